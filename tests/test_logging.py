"""Access log lines in the served gateway, JSON logs on request, and no row value in any log."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest
import requests
from django.test import Client

from gateway.log_format import JsonFormatter
from tests.live import ADMIN_PASSWORD, ADMIN_USER, live_gateway
from tests.processes import ROOT

SECRET_VALUE = "Zebulon-Quux-4711"
FLOW = "Determine_Gender.ddf"
METADATA = "application/vnd.sas.datamgmt.jobflow.metadata+json"


def test_an_access_line_names_route_status_and_client_but_no_query_value(
    db: None, datazen: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # when
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        datazen.get("/connections", {"key": SECRET_VALUE})
    # then
    (record,) = [r for r in caplog.records if r.name == "gateway.access"]
    assert record.getMessage().startswith('127.0.0.1 "GET /connections?key" 200 ')
    assert record.getMessage().endswith(" key:all")
    fields = record.access  # type: ignore[attr-defined]
    assert fields["endpoint"] == "/connections" and fields["status"] == 200
    assert SECRET_VALUE not in json.dumps(fields) and SECRET_VALUE not in record.getMessage()
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "gateway.access" and line["level"] == "INFO"
    assert line["access"]["query_keys"] == "key"
    assert line["time"].endswith("Z") and "." in line["time"]


@pytest.mark.slow
def test_the_served_gateway_logs_json_lines_without_row_values(tmp_path: Path) -> None:
    # given a gateway started with GATEWAY_LOG_FORMAT=json
    with live_gateway(tmp_path, GATEWAY_LOG_FORMAT="json") as gateway:
        auth = (ADMIN_USER, ADMIN_PASSWORD)
        xml = (ROOT / "docs" / "examples" / FLOW).read_text()
        content = base64.b64encode(xml.encode()).decode()
        flux = gateway.dataflux
        # when a flow runs over a row holding a value, and a DataZen call is made
        created = requests.post(
            f"{flux}/jobFlowDefns", json={"name": FLOW, "content": content}, auth=auth, timeout=30
        )
        ran = requests.post(
            f"{flux}/jobFlowDefns/{base64.b64encode(FLOW.encode()).decode()}",
            json={
                "inputs": {"dataTable": {"metadata": [{"name": "Name"}], "data": [[SECRET_VALUE]]}}
            },
            headers={"Accept": METADATA},
            auth=auth,
            timeout=30,
        )
        requests.get(
            f"{gateway.base}/version",
            headers={"Authorization": f"SharedKey {gateway.key}"},
            timeout=30,
        )
    # then
    assert created.status_code == 200 and ran.status_code == 200
    text = gateway.log.read_text()
    assert SECRET_VALUE not in text
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [e["access"] for e in entries if e["logger"] == "gateway.access"]
    assert {"method": "POST", "status": 200, "client": f"user:{ADMIN_USER}"}.items() <= access[
        -2
    ].items()
    assert access[-1]["endpoint"] == "/version" and access[-1]["client"] == "key:live"
    # every log line but the command's own banner lines is JSON
    other = [line for line in text.splitlines() if line and not line.startswith("{")]
    assert all(not line[:4].isdigit() for line in other), other
