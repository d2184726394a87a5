"""Drive on S3-compatible storage: moto's S3 server on a free loopback port, started here."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq
import pytest

from jobs.models import ExecutionStatus
from jobs.systems import registry
from tests.drivefiles import FILMS, drive_connection
from tests.processes import free_port
from tests.syncdb import direct_job, execute, rows, run

pytestmark = pytest.mark.django_db

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a dev dependency")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    import boto3

    name = f"films-{abs(hash(request.node.name)) % 10**8}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return {
        "client": client,
        "name": name,
        "connection": {
            "service": "awss3",
            "bucket": name,
            "accessKey": "testing",
            "accessSecret": "testing",
            "region": "us-east-1",
            "endpointUrl": s3_endpoint,
        },
    }


def put(bucket: dict[str, Any], key: str, body: str) -> None:
    bucket["client"].put_object(Bucket=bucket["name"], Key=key, Body=body.encode())


def keys(bucket: dict[str, Any]) -> list[str]:
    listed = bucket["client"].list_objects_v2(Bucket=bucket["name"])
    return sorted(item["Key"] for item in listed.get("Contents", []))


def csv_text(films: list[tuple]) -> str:
    return "id,title,year,rate\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in films)


def test_a_bucket_is_read_with_subfolders_and_updated_files_only(
    bucket: dict[str, Any], sqlite_url: str
) -> None:
    # given CSV objects in a bucket, under two prefixes
    put(bucket, "in/a.csv", csv_text(FILMS[:2]))
    put(bucket, "in/2007/b.csv", csv_text(FILMS[2:]))
    key = drive_connection(bucket["connection"], system="AWS S3 Bucket")
    job = direct_job(
        key,
        sqlite_url,
        sql="",
        target="films",
        json_data={
            "DriveSourceSettings": {
                "DriveFilePattern": "*.csv",
                "DriveIncludeSubfolders": True,
                "DriveUpdatedFilesOnly": True,
                "DriveAddFolderColumn": True,
            }
        },
    )
    # when
    first = run(job)
    # then every object is read, with its folder
    assert first.status == ExecutionStatus.SUCCEEDED, first.error_message
    assert [(r[0], r[-1]) for r in rows(sqlite_url, "films")] == [
        (1, "in"),
        (2, "in"),
        (3, "in/2007"),
        (4, "in/2007"),
        (5, "in/2007"),
    ]
    # when one object changes (its ETag with it)
    put(bucket, "in/2007/b.csv", csv_text([(3, "Changed", 2007, 1.0)]))
    second = run(job)
    # then its rows are updated and deleted; the other object's rows stay
    assert second.status == ExecutionStatus.SUCCEEDED, second.error_message
    assert [(r[0], r[1]) for r in rows(sqlite_url, "films")] == [
        (1, "Academy Dinosaur"),
        (2, "Ace Goldfinger"),
        (3, "Changed"),
    ]
    assert (second.record_count, second.delete_count) == (1, 2)
    third = run(job)
    assert (third.record_count, third.delete_count) == (0, 0)


def test_a_table_is_written_to_a_bucket_as_parquet_objects(
    bucket: dict[str, Any], sqlite_url: str
) -> None:
    # given a SQLite table and a writer into the bucket's exports/ prefix
    execute(sqlite_url, "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT, rate REAL)")
    execute(
        sqlite_url,
        "INSERT INTO films VALUES (:id, :title, :rate)",
        params=[{"id": f[0], "title": f[1], "rate": f[3]} for f in FILMS],
    )
    key = drive_connection(bucket["connection"], system="AWS S3 Bucket")
    job = direct_job(sqlite_url, key, sql="SELECT * FROM films", target="exports/films.parquet")
    # when
    execution = run(job)
    # then one object holds the rows; the writer's position sits beside it
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    name = f"exports/films_{execution.execution_id}.parquet"
    assert name in keys(bucket)
    body = bucket["client"].get_object(Bucket=bucket["name"], Key=name)["Body"].read()
    assert [tuple(r.values()) for r in pq.read_table(io.BytesIO(body)).to_pylist()] == rows(
        sqlite_url, "films"
    )
    state = [k for k in keys(bucket) if k.startswith("exports/.datazen/")]
    assert len(state) == 1
    position = json.loads(
        bucket["client"].get_object(Bucket=bucket["name"], Key=state[0])["Body"].read()
    )
    assert position["last_execution_id"] == execution.execution_id


def test_the_connection_check_lists_the_bucket(bucket: dict[str, Any]) -> None:
    put(bucket, "one.csv", csv_text(FILMS[:1]))
    key = drive_connection(bucket["connection"], system="AWS S3 Bucket")
    assert registry.check(registry.resolve(key)) == f"bucket {bucket['name']}: 1 file(s)"


def test_a_bucket_path_with_dot_dot_is_refused(bucket: dict[str, Any], sqlite_url: str) -> None:
    key = drive_connection({**bucket["connection"], "path": "../other"})
    execution = run(direct_job(key, sqlite_url, sql="", target="films", json_data={}))
    assert execution.status == ExecutionStatus.FAILED
    assert "contains '..'" in execution.error_message
