"""DataZen HTTP API 2.0, mounted at the root; documented aliases map to the same views."""

from django.urls import path

from datazen import views

app_name = "datazen"


urlpatterns = [
    # Agent API
    path("version", views.VersionView.as_view(), name="version"),
    path("status", views.StatusView.as_view(), name="status"),
    path("licenseinfo", views.LicenseInfoView.as_view(), name="licenseinfo"),
    path("start", views.StartAgentView.as_view(), name="start"),
    path("stop", views.StopAgentView.as_view(), name="stop"),
    path("connections", views.ConnectionsView.as_view(), name="connections"),
    path(
        "connections/metadata",
        views.ConnectionsMetadataView.as_view(),
        name="connections-metadata",
    ),
    # Jobs API
    path("job", views.JobView.as_view(), name="job"),
    path("job/dynamic", views.DynamicJobView.as_view(), name="job-dynamic"),
    path(
        "job/dynamic/executions",
        views.DynamicExecutionsView.as_view(),
        name="job-dynamic-executions",
    ),
    path("job/enable", views.EnableJobView.as_view(), name="job-enable"),
    path("job/start", views.StartJobView.as_view(), name="job-start"),
    path("job/stop", views.StopJobView.as_view(), name="job-stop"),
    path("job/stopprocessing", views.StopJobView.as_view(), name="job-stopprocessing"),
    path("job/settspointer", views.TsPointerView.as_view(), name="job-settspointer"),
    path("job/output", views.JobOutputView.as_view(), name="job-output"),
    path("job/log", views.JobLogView.as_view(), name="job-log"),
    path("job/history", views.JobHistoryView.as_view(), name="job-history"),
    path("job/status", views.JobStatusView.as_view(), name="job-status"),
    path("jobs/status", views.JobStatusView.as_view(), name="jobs-status"),
    path("jobs/info", views.JobsInfoView.as_view(), name="jobs-info"),
    path("jobs/summary", views.JobsSummaryView.as_view(), name="jobs-summary"),
    path("jobssummary", views.JobsSummaryView.as_view(), name="jobssummary"),
]
