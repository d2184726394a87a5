"""OpenAPI 3 documents of the two vendor APIs, one per vendor, built by drf-spectacular.

The vendor apps describe their endpoints in datazen/schema.py and dataflux/schema.py (so their
view modules stay as they are); this module holds what both share: the named components each
vendor registers, the hooks that add them and drop the URL aliases that are not endpoints of
their own, and the generator the schema views and `manage.py generateschema` use.
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import patched_settings
from drf_spectacular.utils import extend_schema, extend_schema_view

VENDORS = ("datazen", "dataflux")
DATAFLUX_BASE = "SASDataMgmtRTDataJob/rest"

# Named schemas (components/schemas) per vendor; filled by the vendor's schema module.
COMPONENTS: dict[str, dict[str, dict[str, Any]]] = {vendor: {} for vendor in VENDORS}

# Paths the URL space needs but the document must not list twice: DataFlux answers its base URL
# with and without the slash and its collections with a trailing slash too; anything else under
# the base URL is an authenticated SAS 404 (a catch-all, not an endpoint).
HIDDEN_PATHS = {
    f"/{DATAFLUX_BASE}",
    f"/{DATAFLUX_BASE}/jobFlowDefns/",
    f"/{DATAFLUX_BASE}/engines/",
    f"/{DATAFLUX_BASE}/{{rest}}",
}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}


def object_schema(
    properties: dict[str, Any],
    *,
    optional: tuple[str, ...] = (),
    additional: bool | None = None,
    description: str = "",
) -> dict[str, Any]:
    """An object whose properties are all required but the `optional` ones; `additional` sets
    `additionalProperties` (left out: OpenAPI's default, anything more is allowed)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [name for name in properties if name not in optional]
    if required:  # OpenAPI 3.0 does not allow an empty list
        schema["required"] = required
    if additional is not None:
        schema["additionalProperties"] = additional
    if description:
        schema["description"] = description
    return schema


def component(vendor: str, name: str, schema: dict[str, Any]) -> None:
    """Register a named schema of the vendor's, for `ref` and the document's components."""
    COMPONENTS[vendor][name] = schema


def document(view: type, tag: str, methods: dict[str, dict[str, Any]]) -> None:
    """`extend_schema` per HTTP method (`get=dict(operation_id=…, responses=…)`, …) on the view
    class, under one tag, so the vendor's view modules stay about behaviour."""
    extend_schema_view(**{m: extend_schema(tags=[tag], **kw) for m, kw in methods.items()})(view)


def ref(vendor: str, name: str) -> dict[str, str]:
    """A `$ref` to one of the vendor's components (which must be registered)."""
    if name not in COMPONENTS[vendor]:
        raise KeyError(f"{vendor} has no schema component {name!r}")
    return {"$ref": f"#/components/schemas/{name}"}


def vendor_patterns(vendor: str) -> list[URLPattern | URLResolver]:
    """The vendor's URL space exactly as gateway/urls.py mounts it (same prefix, namespace)."""
    if vendor == "datazen":
        return [path("", include("datazen.urls", namespace="datazen"))]
    if vendor == "dataflux":
        return [path(DATAFLUX_BASE, include("dataflux.urls", namespace="dataflux"))]
    raise ValueError(f"unknown vendor {vendor!r}; expected one of {', '.join(VENDORS)}")


def drop_aliases(endpoints: list[tuple[str, str, str, Any]]) -> list[tuple[str, str, str, Any]]:
    """drf-spectacular preprocessing hook: leave out HIDDEN_PATHS and HEAD/OPTIONS."""
    return [
        e
        for e in endpoints
        if e[0] not in HIDDEN_PATHS and e[2] in ("GET", "POST", "PUT", "DELETE")
    ]


def add_components(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the vendor's named schemas, sorted by name."""
    vendor = getattr(generator, "vendor", None)
    if vendor in COMPONENTS:
        schemas = result.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(COMPONENTS[vendor])
        result["components"]["schemas"] = dict(sorted(schemas.items()))
    return result


def settings_for(vendor: str) -> dict[str, Any]:
    """SPECTACULAR_SETTINGS overrides for one vendor's document."""
    # Each vendor's schema module builds on the helpers above: importing them at the top is a
    # cycle.
    from dataflux.schema import SETTINGS as DATAFLUX
    from datazen.schema import SETTINGS as DATAZEN

    return {"datazen": DATAZEN, "dataflux": DATAFLUX}[vendor]


class VendorSchemaGenerator(SchemaGenerator):
    """A generator that knows which vendor it documents (for add_components)."""

    vendor: str = ""


def generator_class(vendor: str) -> type[VendorSchemaGenerator]:
    return type(f"{vendor.title()}SchemaGenerator", (VendorSchemaGenerator,), {"vendor": vendor})


def build_schema(vendor: str, request: Any = None) -> dict[str, Any]:
    """The vendor's OpenAPI document as a dict (what /api/schema/<vendor>/ serves)."""
    with patched_settings(settings_for(vendor)):
        generator = generator_class(vendor)(patterns=vendor_patterns(vendor))
        return generator.get_schema(request=request, public=True)
