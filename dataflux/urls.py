"""DataFlux Real-Time Data Job REST API, mounted at /SASDataMgmtRTDataJob/rest.

The include has no trailing slash, so every pattern starts with "/". Flow ids are base64 and
may hold "/" (raw or as %2F, which arrives decoded): they are matched with `path`.
"""

from django.urls import path

from dataflux import views

app_name = "dataflux"

urlpatterns = [
    path("/", views.RootView.as_view(), name="root"),
    path("", views.RootView.as_view(), name="root-bare"),
    path("/serverInfo", views.ServerInfoView.as_view(), name="server-info"),
    path("/jobFlowDefns", views.FlowsView.as_view(), name="flows"),
    path("/jobFlowDefns/", views.FlowsView.as_view()),
    path("/jobFlowDefns/<path:ref>/content", views.FlowContentView.as_view(), name="content"),
    path("/jobFlowDefns/<path:ref>/metadata", views.FlowMetadataView.as_view(), name="metadata"),
    path("/jobFlowDefns/<path:ref>/engines", views.FlowEnginesView.as_view(), name="flow-engines"),
    path("/jobFlowDefns/<path:ref>", views.FlowView.as_view(), name="flow"),
    path("/engines", views.EnginesView.as_view(), name="engines"),
    path("/engines/", views.EnginesView.as_view()),
    path(
        "/engines/onCompletion",
        views.EnginesCompletionView.as_view(),
        name="engines-completion",
    ),
    path("/engines/<int:engine_id>", views.EngineView.as_view(), name="engine"),
    path(
        "/engines/<int:engine_id>/onCompletion",
        views.EngineCompletionView.as_view(),
        name="engine-completion",
    ),
    path("/<path:rest>", views.UnknownView.as_view(), name="unknown"),
]
