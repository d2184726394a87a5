"""URL space: the admin console, DataFlux under its vendor base path, DataZen at the root."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("SASDataMgmtRTDataJob/rest", include("dataflux.urls", namespace="dataflux")),
    path("", include("datazen.urls", namespace="datazen")),
]
