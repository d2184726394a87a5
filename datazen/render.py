"""The DataZen JSON shapes, built from the shared models."""

from typing import Any

from django.conf import settings
from rest_framework.request import Request

from jobs import agent


def agent_url(request: Request) -> str:
    return f"{request.scheme}://{request.get_host()}"


def version(request: Request) -> dict[str, Any]:
    major, minor, revision = (int(part) for part in settings.GATEWAY_VERSION.split("."))
    return {
        "URL": agent_url(request),
        "Running": agent.is_running(),
        "Major": major,
        "Minor": minor,
        "Revision": revision,
        "Build": 0,
        "JobsRunning": agent.jobs_running(),
    }
