"""Helpers the DataFlux tests share: users with permissions, Basic clients, uploads."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from dataflux.auth import forget_verified
from jobs.flows.runtime.engines import reset_pool

BASE = "/SASDataMgmtRTDataJob/rest"
EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
METADATA = "application/vnd.sas.datamgmt.jobflow.metadata+json"
# A flow whose one expression takes a while (for limits, stops and queues).
SLOW_FLOW = """<flow>
  <inputs><table><field name="x" type="integer"/></table></inputs>
  <outputs><table><field name="n" type="integer"/></table></outputs>
  <nodes><externalData/><expression>
    <field name="n" type="integer">
      length(replace(printf('%.*c', 200000 + x - x, 'x'), 'x', 'y'))
    </field>
  </expression></nodes>
</flow>"""
ALL_PERMISSIONS = (
    "add_job",
    "view_job",
    "change_job",
    "delete_job",
    "execute_job",
    "change_flowengine",
    "delete_flowengine",
)


def fresh_state() -> None:
    """Engines and remembered logins do not leak from one test to the next."""
    reset_pool()
    forget_verified()


def make_user(username: str, permissions: tuple[str, ...] = ALL_PERMISSIONS) -> User:
    user = User.objects.create_user(username, password=f"{username}-secret")
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="jobs", codename__in=permissions)
    )
    return user


def basic_client(username: str, password: str | None = None) -> APIClient:
    client = APIClient()
    token = base64.b64encode(f"{username}:{password or username + '-secret'}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client


def example_xml(name: str) -> str:
    return (EXAMPLES / name).read_text()


def upload(client: APIClient, name: str, xml: str | None = None) -> Any:
    content = xml if xml is not None else example_xml(name)
    body = {"version": 1, "name": name, "content": base64.b64encode(content.encode()).decode()}
    return client.post(f"{BASE}/jobFlowDefns", body, format="json", HTTP_ACCEPT="application/json")


def execute(client: APIClient, flow_id: str, inputs: dict | None, **extra: Any) -> Any:
    body = {} if inputs is None else {"inputs": inputs}
    return client.post(
        f"{BASE}/jobFlowDefns/{flow_id}",
        body,
        format="json",
        HTTP_ACCEPT=extra.pop("accept", METADATA),
        **extra,
    )
