"""Writers without transactions (HTTP, drive) under a claim superseded mid-apply: a worker
paused past its lease, resumed after another took its run over. Its recorded position never
moves over its successor's, and a drive file its successor wrote is never replaced
(jobs/systems/positions.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from jobs.models import Job
from jobs.sync.changelog import UPSERT, Frame, Header
from jobs.sync.plan import open_writer
from jobs.systems.base import ApplyHooks, LeaseLost
from jobs.systems.batch import Column
from jobs.systems.http import client as http_client
from tests.drivefiles import drive_connection
from tests.httpjobs import http_connection
from tests.syncdb import direct_job, execute

pytestmark = pytest.mark.django_db

OLD, NEW = (
    "000000000000001.00000000000000000001.0000000000",
    ("000000000000002.00000000000000000001.0000000001"),
)
HEADER = Header("films", "1000", [Column("id", "integer"), Column("title")], ["id"])


def frames(*rows: tuple[int, str]) -> list[Frame]:
    return [Frame(UPSERT, [row]) for row in rows]


def _writer(job: Job) -> Any:
    return open_writer(Job.objects.get(pk=job.direct_writer_id))[1]


@pytest.fixture
def source(sqlite_url: str) -> str:
    execute(sqlite_url, "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT)")
    return sqlite_url


def test_an_http_writer_superseded_mid_apply_stops_and_leaves_the_position_alone(
    httpserver: HTTPServer, source: str
) -> None:
    http_client.forget_clients()
    httpserver.expect_request("/api/films", method="POST").respond_with_data("ok")
    http_connection(httpserver.url_for("/api"))
    job = direct_job(
        source, "api", sql="SELECT id, title FROM films", target="", propagate_delete=False,
        writer={"TargetSystem": "HTTP", "UpsertScript": '{"id": {{id}}}'},
        options={"BatchCount": 1, "HttpUpsertSettings": {
            "IsRESTRequest": True, "HTTPURI": "/films", "HTTPVerb": "POST",
            "HTTPContentType": "application/json"}},
    )  # fmt: skip
    stale = _writer(job)
    rows = [(1, "a"), (2, "b"), (3, "c")]
    taken: list[bool] = []

    def taken_over(sent: int) -> None:
        # when, after the stale claim's first request, a later claim applies this change log
        # and the next one
        if not taken:
            taken.append(True)
            newer = _writer(job)
            newer.apply(HEADER, frames(*rows), "1000", ApplyHooks(fence=NEW))
            newer.apply(HEADER, frames((4, "d")), "1001", ApplyHooks(fence=NEW))

    # then the stale claim stops at its next position write
    with pytest.raises(LeaseLost):
        stale.apply(HEADER, frames(*rows), "1000", ApplyHooks(fence=OLD, after_chunk=taken_over))
    # and the position is the later claim's, past both logs: nothing is sent again
    assert _writer(job).applied_position() == "1001"
    # each row was sent once: the stale claim's first request (recorded before the takeover,
    # so the later claim resumed after it), then the later claim's; a stale claim stopped
    # between a request and its record would have sent that one request twice (at least once)
    sent = [r.data for r, _ in httpserver.log]
    assert sent == [b'{"id": 1}', b'{"id": 2}', b'{"id": 3}', b'{"id": 4}']
    # and the stale claim cannot start again
    with pytest.raises(LeaseLost):
        stale.apply(HEADER, frames(*rows), "1002", ApplyHooks(fence=OLD))
    http_client.forget_clients()


def test_a_drive_writer_superseded_mid_apply_never_replaces_the_later_claims_file(
    drive_root: Path, source: str
) -> None:
    key = drive_connection({"service": "local", "path": "exports"})
    job = direct_job(source, key, sql="SELECT id, title FROM films", target="out/films.csv")
    stale = _writer(job)
    taken: list[bool] = []

    def taken_over(upserts: int, deletes: int) -> None:
        # when, while the stale claim writes its file, a later claim writes the same change
        # log's file (its own rows: the source changed meanwhile) and records its position
        if not taken:
            taken.append(True)
            newer = _writer(job)
            newer.apply(HEADER, frames((1, "newer")), "1000", ApplyHooks(fence=NEW))

    # then the stale claim refuses to name its file, and says why
    with pytest.raises(LeaseLost):
        stale.apply(
            HEADER, frames((1, "stale"), (2, "stale")), "1000",
            ApplyHooks(fence=OLD, progress=taken_over),
        )  # fmt: skip
    # and the file is the later claim's, with nothing left of the stale one's
    out = drive_root / "exports" / "out"
    assert (out / "films_1000.csv").read_text().splitlines() == ['"id","title"', '1,"newer"']
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["films_1000.csv"]
    assert [p for p in out.iterdir() if p.name.endswith(".part")] == []
    # and the position is the later claim's alone
    assert _writer(job).applied_position() == "1000"
    assert [p.name for p in (out / ".datazen").iterdir()] == [
        f"{Job.objects.get(pk=job.direct_writer_id).guid}.{NEW}.json"
    ]
