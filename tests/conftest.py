"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import LazySettings
from rest_framework.test import APIClient

from jobs import leases
from jobs.models import AccessKey, AccessScope
from tests import services


@pytest.fixture(autouse=True)
def _no_failed_sign_ins_carried_over() -> Iterator[None]:
    """Failed sign-ins are counted per process: one test's wrong keys never throttle another."""
    from gateway import throttle

    throttle.failures.clear()
    yield
    throttle.failures.clear()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with services.postgres_database() as url:
        yield url


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    with services.mariadb_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'external.sqlite3'}"


@pytest.fixture
def drive_root(tmp_path: Path, settings: LazySettings) -> Path:
    """An empty folder as the drive root (GATEWAY_DRIVE_ROOT) for the test."""
    folder = tmp_path / "drive-root"
    folder.mkdir()
    settings.GATEWAY_DRIVE_ROOT = str(folder)
    return folder


@pytest.fixture
def embedded_worker(transactional_db: None) -> Iterator[Any]:
    """A real Celery worker in a thread on the in-memory transport, as `make run` has."""
    from celery.contrib.testing.worker import start_worker

    from gateway.celery import app

    with start_worker(
        app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=30
    ) as worker:
        yield worker


def key_client(**flags: Any) -> tuple[APIClient, AccessKey]:
    key, raw = AccessKey.generate(flags.pop("name", "test"), **flags)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"SharedKey {raw}")
    return client, key


@pytest.fixture
def datazen(db: None) -> APIClient:
    """An API client authenticated with an all-scope key that may decrypt."""
    client, _ = key_client(name="all", scope=AccessScope.ALL, can_decrypt=True)
    return client


@pytest.fixture(autouse=True)
def _lease_renewal_ends_with_the_test() -> Iterator[None]:
    """A claim starts the process's lease-renewal thread; it ends with the test that made it
    (jobs/leases.py stop_renewing says what a thread left running broke)."""
    yield
    leases.stop_renewing()
