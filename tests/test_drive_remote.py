"""Drive on remote storage, each served by a real server on a free loopback port started here:
moto's S3 server and pyftpdlib's FTP server (both dev dependencies)."""

from __future__ import annotations

import gzip
import io
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from jobs.models import ExecutionStatus
from jobs.systems import registry
from jobs.systems.drive import check_value
from jobs.systems.drive.location import DriveError
from tests.drivefiles import FILMS, drive_connection
from tests.processes import free_port
from tests.syncdb import direct_job, execute, rows, run

pytestmark = pytest.mark.django_db

FTP_PASSWORD = "s3cr3t-ftp"


def csv_text(films: list[tuple]) -> str:
    return "id,title,year,rate\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in films)


@dataclass
class Remote:
    """A folder on a remote store as a drive connection sees it, and a way to put files in it."""

    system: str
    connection: dict[str, Any]
    put: Callable[[str, str], None]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is a dev dependency")
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


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator[dict[str, Any]]:
    servers = pytest.importorskip("pyftpdlib.servers", reason="pyftpdlib is a dev dependency")
    handlers = pytest.importorskip("pyftpdlib.handlers")
    authorizers = pytest.importorskip("pyftpdlib.authorizers")
    home = tmp_path / "ftp-home"
    home.mkdir()
    authorizer = authorizers.DummyAuthorizer()
    authorizer.add_user("films", FTP_PASSWORD, str(home), perm="elradfmwMT")
    handler = type("Handler", (handlers.FTPHandler,), {"authorizer": authorizer})
    port = free_port()
    server = servers.ThreadedFTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2}, daemon=True)
    thread.start()
    try:
        yield {
            "home": home,
            "connection": {
                "service": "ftp",
                "host": "127.0.0.1",
                "port": port,
                "username": "films",
                "password": FTP_PASSWORD,
                "path": "/exports",
            },
        }
    finally:
        server.close_all()
        thread.join(5)


def put(bucket: dict[str, Any], key: str, body: str) -> None:
    bucket["client"].put_object(Bucket=bucket["name"], Key=key, Body=body.encode())


def keys(bucket: dict[str, Any]) -> list[str]:
    listed = bucket["client"].list_objects_v2(Bucket=bucket["name"])
    return sorted(item["Key"] for item in listed.get("Contents", []))


@pytest.fixture(params=["s3", "ftp"])
def remote(request: pytest.FixtureRequest) -> Remote:
    if request.param == "s3":
        bucket = request.getfixturevalue("bucket")
        return Remote(
            system="AWS S3 Bucket",
            connection={**bucket["connection"], "path": "in"},
            put=lambda name, text: put(bucket, f"in/{name}", text),
        )
    site = request.getfixturevalue("ftp")

    def put_file(name: str, text: str) -> None:
        path = site["home"] / "exports" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return Remote(system="FTP Site", connection=site["connection"], put=put_file)


def test_a_remote_folder_is_read_with_subfolders_and_updated_files_only(
    remote: Remote, sqlite_url: str
) -> None:
    # given CSV files in a remote folder and one of its subfolders
    remote.put("a.csv", csv_text(FILMS[:2]))
    remote.put("2007/b.csv", csv_text(FILMS[2:]))
    key = drive_connection(remote.connection, system=remote.system)
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
    # then every file is read, with its folder
    assert first.status == ExecutionStatus.SUCCEEDED, first.error_message
    assert [(r[0], r[-1]) for r in rows(sqlite_url, "films")] == [
        (1, ""),
        (2, ""),
        (3, "2007"),
        (4, "2007"),
        (5, "2007"),
    ]
    # when one file changes (a row updated, two gone) and the other does not
    remote.put("2007/b.csv", csv_text([(3, "Changed", 2007, 1.0)]))
    second = run(job)
    # then only that file is read again, and its changes reach the target
    assert second.status == ExecutionStatus.SUCCEEDED, second.error_message
    assert [(r[0], r[1]) for r in rows(sqlite_url, "films")] == [
        (1, FILMS[0][1]),
        (2, FILMS[1][1]),
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


def test_a_table_is_written_to_an_ftp_folder_under_a_hidden_name_then_renamed(
    ftp: dict[str, Any], sqlite_url: str
) -> None:
    # given a SQLite table and a drive target on the FTP site
    execute(sqlite_url, "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT)")
    execute(sqlite_url, "INSERT INTO films VALUES (1, 'One'), (2, 'Two')")
    key = drive_connection(ftp["connection"], system="FTP Site")
    job = direct_job(sqlite_url, key, sql="SELECT * FROM films", target="out/films.csv.gz")
    # when
    execution = run(job)
    # then one compressed file, named by ExecutionId, and no temporary file left
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    folder = ftp["home"] / "exports" / "out"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".datazen",
        f"films_{execution.execution_id}.csv.gz",
    ]
    text = gzip.decompress((folder / f"films_{execution.execution_id}.csv.gz").read_bytes())
    assert text.decode().splitlines() == ['"id","title"', '1,"One"', '2,"Two"']


def test_the_connection_check_lists_the_bucket(bucket: dict[str, Any]) -> None:
    put(bucket, "one.csv", csv_text(FILMS[:1]))
    key = drive_connection(bucket["connection"], system="AWS S3 Bucket")
    assert registry.check(registry.resolve(key)) == f"bucket {bucket['name']}: 1 file(s)"


def test_a_bucket_path_with_dot_dot_is_refused(bucket: dict[str, Any], sqlite_url: str) -> None:
    key = drive_connection({**bucket["connection"], "path": "../other"})
    execution = run(direct_job(key, sqlite_url, sql="", target="films", json_data={}))
    assert execution.status == ExecutionStatus.FAILED
    assert "contains '..'" in execution.error_message


def test_ftp_paths_stay_in_the_folder_and_a_bad_login_is_said_without_the_password(
    ftp: dict[str, Any],
) -> None:
    (ftp["home"] / "exports").mkdir()
    connection = ftp["connection"]
    assert check_value(json.dumps(connection)).startswith("FTP folder /exports on 127.0.0.1:")
    with pytest.raises(DriveError, match=r"contains '\.\.'"):
        check_value(json.dumps({**connection, "path": "/exports/../etc"}))
    with pytest.raises(DriveError, match="refused the login") as refused:
        check_value(json.dumps({**connection, "password": "wrong-password"}))
    assert "wrong-password" not in str(refused.value)
    assert FTP_PASSWORD not in str(refused.value)
