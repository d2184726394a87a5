"""The OpenAPI documents: valid OpenAPI 3, served with offline Swagger UI and ReDoc, and true of
the live gateway (schemathesis: no 500, every answer's status, type and body as documented)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from drf_spectacular.validation import validate_schema

from gateway.openapi import VENDORS, build_schema
from tests.live import ADMIN_PASSWORD, ADMIN_USER, live_gateway
from tests.processes import BIN

# Bounded so the whole run stays within a minute or two on a shared machine.
EXAMPLES_PER_OPERATION = 25
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)


@pytest.mark.parametrize("vendor", VENDORS)
def test_the_document_is_valid_openapi_3(vendor: str) -> None:
    document = build_schema(vendor)
    validate_schema(document)  # raises on any departure from the OpenAPI 3.0 schema
    assert document["openapi"].startswith("3.")


def test_datazen_documents_every_endpoint_in_pascal_case(db: None) -> None:
    document = build_schema("datazen")
    paths = set(document["paths"])
    expected = "/version /status /licenseinfo /connections /job /job/start /job/history"
    assert set(f"{expected} /jobs/info /jobs/summary /job/dynamic/executions".split()) <= paths
    sync_status = document["components"]["schemas"]["SyncStatus"]["properties"]
    assert "RecordsDirectWritten" in sync_status and "ExecGuid" in sync_status
    start = document["paths"]["/job/start"]["post"]
    assert start["responses"]["200"]["content"] == {
        "text/plain": {"schema": {"type": "string", "enum": ["OK"]}}
    }
    assert document["components"]["securitySchemes"]["SharedKey"]["name"] == "Authorization"


def test_dataflux_documents_the_sas_media_types() -> None:
    document = build_schema("dataflux")
    base = "/SASDataMgmtRTDataJob/rest"
    execute = document["paths"][f"{base}/jobFlowDefns/{{ref}}"]["post"]
    assert "application/vnd.sas.datamgmt.jobflow.metadata+json" in execute["requestBody"]["content"]
    assert set(execute["responses"]["200"]["content"]) == {
        "application/vnd.sas.datamgmt.jobflow.metadata+json"
    }
    assert set(execute["responses"]["400"]["content"]) == {"application/vnd.sas.error+json"}
    listing = document["paths"][f"{base}/engines"]["get"]["responses"]["200"]["content"]
    assert set(listing) == {"application/vnd.sas.collection+json"}
    # the URL aliases and the catch-all are not endpoints of their own
    assert f"{base}/engines/" not in document["paths"]
    assert f"{base}/{{rest}}" not in document["paths"]


@pytest.mark.parametrize("vendor", VENDORS)
def test_schema_swagger_and_redoc_are_served_without_internet(db: None, vendor: str) -> None:
    client = Client()
    served = client.get(f"/api/schema/{vendor}/")
    assert served.status_code == 200
    assert yaml.safe_load(served.content)["paths"]
    for page in ("swagger", "redoc"):
        html = client.get(f"/api/schema/{vendor}/{page}/").content.decode()
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
        assert assets, f"{page} loads no asset from the gateway"
        assert "cdn" not in html.lower() and "https://" not in html
        for asset in assets:
            assert b"".join(client.get(asset).streaming_content), asset  # type: ignore[attr-defined]


def test_unmatched_vendor_paths_answer_in_the_vendor_shape(db: None) -> None:
    client = Client()
    flux = client.get("/SASDataMgmtRTDataJob/rest/jobFlowDefns/a%0Ab/content")
    assert flux.status_code == 404 and flux["Content-Type"] == "application/vnd.sas.error+json"
    assert flux.json()["errorCode"] == 11020
    zen = client.get("/no/such/endpoint")
    assert zen.status_code == 404 and zen.json() == {
        "Error": "No DataZen endpoint answers GET /no/such/endpoint.",
        "StatusCode": 404,
    }


def _schemathesis(
    url: str, base: str, auth: list[str], report: Path
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            url,
            "--url",
            base,
            *auth,
            "--checks",
            CHECKS,
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            "17",
            "--no-color",
            "--report",
            "junit",
            "--report-junit-path",
            str(report),
        ],
        cwd=report.parent,  # its example cache (.schemathesis/) goes there, not in the checkout
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(tmp_path: Path) -> None:
    figures = {}
    with live_gateway(tmp_path) as gateway:
        auths = {
            "datazen": ["--header", f"Authorization: SharedKey {gateway.key}"],
            "dataflux": ["--auth", f"{ADMIN_USER}:{ADMIN_PASSWORD}"],
        }
        for vendor in VENDORS:
            report = tmp_path / f"{vendor}.xml"
            run = _schemathesis(
                f"{gateway.base}/api/schema/{vendor}/", gateway.base, auths[vendor], report
            )
            cases = re.search(r"(\d+) generated", run.stdout)
            operations = re.search(r"Operations:\s+(\d+) selected", run.stdout)
            suite = ElementTree.parse(report).getroot()
            failures = sum(
                int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suite.iter("testsuite")
            )
            figures[vendor] = {
                "operations": int(operations.group(1)) if operations else 0,
                "examples": int(cases.group(1)) if cases else 0,
                "failures": failures,
            }
            assert run.returncode == 0, f"{vendor}:\n{run.stdout[-8000:]}\n{run.stderr[-2000:]}"
    sys.stderr.write(f"schemathesis figures: {figures}\n")
    assert figures["datazen"]["operations"] == 28 and figures["dataflux"]["operations"] == 17
    assert all(f["examples"] > 500 and f["failures"] == 0 for f in figures.values()), figures


@pytest.mark.parametrize("vendor", VENDORS)
def test_generateschema_writes_the_served_document(vendor: str, tmp_path: Path) -> None:
    # when
    target = tmp_path / f"{vendor}.json"
    call_command(
        "generateschema", "--api", vendor, "--format", "json", "--validate", "--file", str(target)
    )
    # then
    written = json.loads(target.read_text())
    assert written == json.loads(json.dumps(build_schema(vendor)))
    assert written["info"]["title"].startswith(("Enzo DataZen", "SAS DataFlux"))
