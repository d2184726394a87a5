"""The DataFlux JSON shapes: links, collections, job flows, metadata, engines, server info."""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.request import Request

from dataflux import media
from jobs.flows.language.parser import FlowSpec
from jobs.flows.quality.reference import reference_data
from jobs.flows.runtime.definitions import flow_id
from jobs.flows.runtime.engines import EngineInfo
from jobs.models import Job

STARTED_AT = timezone.now()


def sas_time(moment: dt.datetime) -> str:
    """The document's timestamp form, `20150106T16:16:37`, in the gateway's time zone."""
    return timezone.localtime(moment).strftime("%Y%m%dT%H:%M:%S")


@functools.cache
def _base_path() -> str:
    return reverse("dataflux:root-bare")


class Links:
    """Builds links for one request: `href` absolute from its host, `uri` from the base."""

    def __init__(self, request: Request) -> None:
        self.base = f"{request.scheme}://{request.get_host()}{_base_path()}"

    def __call__(self, rel: str, method: str, uri: str, media_type: str | None = None) -> dict:
        link = {"href": self.base + uri, "method": method, "rel": rel}
        if media_type:
            link["type"] = media_type
        link["uri"] = uri
        return link


def root(links: Links) -> dict[str, Any]:
    return {
        "links": [
            links("jobFlowDefns", "GET", "/jobFlowDefns", media.COLLECTION),
            links("create", "POST", "/jobFlowDefns", media.JOBFLOW),
            links("serverInfo", "GET", "/serverInfo", media.JSON),
            links("engines", "GET", "/engines", media.COLLECTION),
            links("enginesByName", "GET", "/engines?name={URL-encoded-name}", media.COLLECTION),
        ],
        "version": 1,
    }


def collection(items: list[dict], links: list[dict]) -> dict[str, Any]:
    return {"version": 1, "name": "items", "count": len(items), "items": items, "links": links}


def _flow_uri(job: Job) -> str:
    return f"/jobFlowDefns/{flow_id(job.job_key)}"


def summary(job: Job, links: Links) -> dict[str, Any]:
    uri = _flow_uri(job)
    return {
        "version": 1,
        "id": flow_id(job.job_key),
        "name": job.job_key,
        "description": (job.definition or {}).get("description", ""),
        "links": [links("self", "GET", uri, media.DEFINITION), links("delete", "DELETE", uri)],
    }


def flows(jobs: list[Job], links: Links) -> dict[str, Any]:
    return collection([summary(job, links) for job in jobs], [links("up", "GET", "/", media.LINK)])


def definition(job: Job, links: Links) -> dict[str, Any]:
    uri = _flow_uri(job)
    facts = job.definition or {}
    return {
        "version": 1,
        "id": flow_id(job.job_key),
        "name": job.job_key,
        "description": facts.get("description", ""),
        "modifiedTimeStamp": sas_time(job.updated_at),
        "size": facts.get("size", len(job.content.encode("utf-8"))),
        "links": [
            links("self", "GET", uri, media.DEFINITION),
            links("delete", "DELETE", uri),
            links("metadata", "GET", f"{uri}/metadata", media.METADATA),
            links("content", "GET", f"{uri}/content", media.CONTENT),
            links("updateContent", "PUT", f"{uri}/content", media.CONTENT),
            links("execute", "POST", uri, media.METADATA),
            links("engines", "GET", f"{uri}/engines", media.COLLECTION),
            links("up", "GET", "/jobFlowDefns", media.COLLECTION),
        ],
    }


def metadata(job: Job, spec: FlowSpec, links: Links) -> dict[str, Any]:
    uri = _flow_uri(job)
    inputs: dict[str, Any] = {m.name: m.default for m in spec.input_macros}
    for table in spec.input_tables:
        inputs[table.name] = {"metadata": [f.metadata() for f in table.fields], "data": []}
    outputs: dict[str, Any] = {m.name: None for m in spec.output_macros}
    if spec.output_table is not None:
        outputs[spec.output_table.name] = {
            "metadata": [f.metadata() for f in spec.output_table.fields],
            "data": [],
        }
    return {
        "version": 1,
        "id": flow_id(job.job_key),
        "name": job.job_key,
        "description": spec.description,
        "inputs": inputs,
        "outputs": outputs,
        "links": [
            links("execute", "POST", uri, media.METADATA),
            links("up", "GET", uri, media.DEFINITION),
            links("self", "GET", f"{uri}/metadata", media.METADATA),
        ],
    }


def execution(job: Job, outputs: dict[str, Any] | None, links: Links) -> dict[str, Any]:
    uri = _flow_uri(job)
    body: dict[str, Any] = {"version": 1, "id": flow_id(job.job_key), "name": job.job_key}
    if outputs is not None:
        body["outputs"] = outputs
    body["links"] = [
        links("execute", "POST", uri, media.METADATA),
        links("up", "GET", uri, media.DEFINITION),
        links("self", "GET", f"{uri}/metadata", media.METADATA),
    ]
    return body


def engine(info: EngineInfo, links: Links) -> dict[str, Any]:
    fid = flow_id(info.flow_name)
    body: dict[str, Any] = {
        "version": 1,
        "id": info.id,
        "jobFlowId": fid,
        "jobFlowName": info.flow_name,
        "loadTime": sas_time(info.loaded_at),
        "onCompletion": info.on_completion,
    }
    if info.max_seconds_left is not None:
        body["maxSecondsLeft"] = info.max_seconds_left
    if info.in_use_by:
        body["inUseBy"] = info.in_use_by
    uri = f"/engines/{info.id}"
    body["links"] = [
        links("jobFlow", "GET", f"/jobFlowDefns/{fid}", media.DEFINITION),
        links("self", "GET", uri, media.COLLECTION),
        links("delete", "DELETE", uri),
        links("updateCompletion", "PUT", f"{uri}/onCompletion", media.TEXT),
    ]
    return body


def engines(infos: list[EngineInfo], links: Links, name: str | None = None) -> dict[str, Any]:
    """A collection of engines; when it is not empty, links to manage all of them at once."""
    items = [engine(info, links) for info in infos]
    query = f"?name={quote(name, safe='')}" if name is not None else ""
    collection_links = [links("up", "GET", "/", media.LINK)]
    if items:
        collection_links += [
            links("delete", "DELETE", f"/engines{query}"),
            links("updateCompletion", "PUT", f"/engines/onCompletion{query}", media.TEXT),
        ]
    return collection(items, collection_links)


def server_info(links: Links) -> dict[str, Any]:
    major, minor, revision = (int(part) for part in settings.GATEWAY_VERSION.split(".")[:3])
    now = timezone.now()
    offset = timezone.localtime(now).utcoffset() or dt.timedelta()
    return {
        "version": 1,
        "fullProductVersion": f"Data Integration Gateway version {major}.{minor}",
        "fullVersion": f"Data Integration Gateway version {settings.GATEWAY_VERSION} (build 0)",
        "majorProductVersion": major,
        "minorProductVersion": minor,
        "productRevision": revision,
        "majorVersion": major,
        "minorVersion": minor,
        "buildNumber": 0,
        "authenticationConnection": "",
        "serverCurrentDate": sas_time(now),
        "serverStartupDate": sas_time(STARTED_AT),
        "minutesFromGmt": int(offset.total_seconds() // 60),
        "databaseVersion": [_database_version()],
        # Where DataFlux lists its Quality Knowledge Base libraries: the data-quality nodes'
        # reference data and the versions it came with.
        "libraryVersion": reference_data(),
        "repositoryInfo": [],
        "links": [links("up", "GET", "/", media.COLLECTION)],
    }


def _database_version() -> str:
    vendor = connection.vendor
    if vendor == "sqlite":
        return f"SQLite version {sqlite3.sqlite_version} --- gateway database"
    return f"{connection.display_name} --- gateway database"
