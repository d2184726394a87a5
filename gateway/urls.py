"""URL space: the admin console, health and metrics, the OpenAPI documents, DataFlux under its
vendor base path, DataZen at the root."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

import dataflux.schema  # noqa: F401  (registers the DataFlux descriptions on its views)
import datazen.schema  # noqa: F401  (registers the DataZen descriptions on its views)
from gateway.health import health
from gateway.metrics import metrics
from gateway.openapi import VENDORS, generator_class, settings_for, vendor_patterns


def _documents() -> list[URLPattern | URLResolver]:
    """/api/schema/<vendor>/ (YAML; ?format=json for JSON), …/swagger/ and …/redoc/."""
    patterns: list[URLPattern | URLResolver] = []
    for vendor in VENDORS:
        name = f"schema-{vendor}"
        schema = SpectacularAPIView.as_view(
            patterns=vendor_patterns(vendor),
            generator_class=generator_class(vendor),
            custom_settings=settings_for(vendor),
        )
        patterns += [
            path(f"api/schema/{vendor}/", schema, name=name),
            path(f"api/schema/{vendor}/swagger/", SpectacularSwaggerView.as_view(url_name=name)),
            path(f"api/schema/{vendor}/redoc/", SpectacularRedocView.as_view(url_name=name)),
        ]
    return patterns


urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health, name="health"),
    path("metrics", metrics, name="metrics"),
    *_documents(),
    *vendor_patterns("dataflux"),
    *vendor_patterns("datazen"),
]

handler404 = "gateway.errors.not_found"
handler500 = "gateway.errors.server_error"
