"""DataZen HTTP API 2.0, mounted at the root."""

from django.urls import path

from datazen import views

app_name = "datazen"

urlpatterns = [
    path("version", views.VersionView.as_view(), name="version"),
]
