"""The sync engine on SQLite → SQLite: every strategy, updates and deletes, options, failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from jobs import definitions, runner
from jobs.models import ExecutionStatus, Job
from jobs.sync.changelog import UPSERT, Frame, Header
from jobs.systems.base import ApplyHooks
from jobs.systems.batch import Column
from jobs.systems.db import writer
from jobs.systems.db.url import create_db_engine
from tests.syncdb import direct_job, execute, messages, rows, run, writer_execution

pytestmark = pytest.mark.django_db


@pytest.fixture
def target_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'target.sqlite3'}"


def seed_films(url: str, count: int = 50) -> None:
    execute(
        url, "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT, rate REAL, updated INTEGER)"
    )
    execute(
        url,
        "INSERT INTO films VALUES (:id, :title, :rate, :updated)",
        params=[
            {"id": i, "title": f"Film {i} ✓", "rate": i / 4, "updated": 100 + i}
            for i in range(1, count + 1)
        ],
    )


def test_first_run_copies_every_row_and_logs_it(sqlite_url: str, target_url: str) -> None:
    # given
    seed_films(sqlite_url)
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM films", target="films_copy")
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert rows(target_url, "films_copy") == rows(sqlite_url, "films")
    assert execution.record_count == 50
    assert execution.records_direct_written == 50
    assert execution.execution_id.isdigit()
    assert execution.package_file.endswith(f"{job.job_key}_{execution.execution_id}.eds")
    assert Path(execution.package_file).is_relative_to(Path(settings.DATA_DIR))
    text = "\n".join(messages(execution))
    assert "Strategy: full with upsert keys on id" in text
    assert "50 rows read" in text
    writer = writer_execution(execution)
    assert writer.status == ExecutionStatus.SUCCEEDED
    assert writer.guid == execution.guid
    assert any("Applied" in m for m in messages(writer))
    job.direct_writer.refresh_from_db()
    assert job.direct_writer.last_execution_id == execution.execution_id


def test_updates_inserts_and_deletes_are_propagated(sqlite_url: str, target_url: str) -> None:
    # given
    seed_films(sqlite_url)
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM films", target="films_copy")
    run(job)
    execute(
        sqlite_url,
        "UPDATE films SET title = 'changed' WHERE id IN (3, 4)",
        "DELETE FROM films WHERE id = 7",
        "INSERT INTO films VALUES (99, 'new', NULL, NULL)",
    )
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert execution.record_count == 3
    assert execution.delete_count == 1
    assert execution.records_direct_deleted == 1
    assert rows(target_url, "films_copy") == rows(sqlite_url, "films")


def test_nothing_changed_writes_no_change_log(sqlite_url: str, target_url: str) -> None:
    # given
    seed_films(sqlite_url)
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM films", target="films_copy")
    run(job)
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.record_count == 0
    assert execution.package_file == ""
    assert "No changes found: no change log written." in messages(execution)


def test_composite_keys(sqlite_url: str, target_url: str) -> None:
    # given
    execute(
        sqlite_url,
        "CREATE TABLE lines (order_no TEXT, line INTEGER, qty INTEGER,"
        " PRIMARY KEY (order_no, line))",
        "INSERT INTO lines VALUES ('A', 1, 5), ('A', 2, 6), ('B', 1, 7), ('B', 2, 8)",
    )
    job = direct_job(
        sqlite_url, target_url, sql="SELECT * FROM lines", target="lines", keys="order_no, line"
    )
    run(job)
    execute(
        sqlite_url,
        "UPDATE lines SET qty = 50 WHERE order_no = 'A' AND line = 2",
        "DELETE FROM lines WHERE order_no = 'B' AND line = 1",
        "INSERT INTO lines VALUES ('C', 1, 1)",
    )
    # when
    execution = run(job)
    # then
    assert execution.record_count == 2 and execution.delete_count == 1
    order = "order_no, line"
    assert rows(target_url, "lines", order) == rows(sqlite_url, "lines", order)


def test_without_keys_rows_are_appended(sqlite_url: str, target_url: str) -> None:
    # given
    execute(
        sqlite_url,
        "CREATE TABLE events (id INTEGER, what TEXT)",
        "INSERT INTO events VALUES (1, 'a'), (2, 'b')",
    )
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM events", target="events", keys="")
    # when
    run(job)
    run(job)
    # then
    assert rows(target_url, "events") == [(1, "a"), (1, "a"), (2, "b"), (2, "b")]
    assert "Strategy: append." in messages(Job.objects.get(pk=job.pk).executions.first())


def test_resync_sends_everything_again(sqlite_url: str, target_url: str) -> None:
    # given
    seed_films(sqlite_url, 10)
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM films", target="films_copy")
    run(job)
    execute(target_url, "UPDATE films_copy SET title = 'drifted'")
    # when
    execution = run(job, resync=True)
    # then
    assert execution.record_count == 10
    assert rows(target_url, "films_copy") == rows(sqlite_url, "films")


def test_testrun_reads_one_record_and_writes_nothing(sqlite_url: str, target_url: str) -> None:
    # given
    seed_films(sqlite_url, 10)
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM films", target="films_copy")
    # when
    execution = run(job, testrun=True)
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.records_available == 1
    assert execution.package_file == ""
    assert any(m.startswith("First record: {'id': 1") for m in messages(execution))
    with pytest.raises(Exception, match="no such table"):
        rows(target_url, "films_copy")


def test_top_n_override_limits_the_rows_read(sqlite_url: str, target_url: str) -> None:
    # given
    seed_films(sqlite_url, 30)
    job = direct_job(
        sqlite_url,
        target_url,
        sql="SELECT * FROM films ORDER BY id",
        target="films_copy",
        json_data={"TopNOverride": 5, "BypassTopN": False},
    )
    # when
    execution = run(job)
    # then
    assert execution.records_available == 5
    assert rows(target_url, "films_copy") == rows(sqlite_url, "films")[:5]


def test_recreate_drops_and_rebuilds_the_target(sqlite_url: str, target_url: str) -> None:
    # given
    seed_films(sqlite_url, 5)
    execute(target_url, "CREATE TABLE films_copy (id INTEGER PRIMARY KEY, other TEXT)")
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM films", target="films_copy")
    # when
    execution = run(job, recreate=True)
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert rows(target_url, "films_copy") == rows(sqlite_url, "films")


def test_missing_source_table_fails_with_the_source_message(
    sqlite_url: str, target_url: str
) -> None:
    # given
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM nowhere", target="t")
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_message == "no such table: nowhere"
    assert job.last_ts_pointer == ""


def test_failing_target_keeps_the_change_log_and_the_next_run_recovers(
    sqlite_url: str, target_url: str
) -> None:
    # given: the target table exists without a column the source has
    seed_films(sqlite_url, 5)
    execute(target_url, "CREATE TABLE films_copy (id INTEGER PRIMARY KEY, title TEXT)")
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM films", target="films_copy")
    failed = run(job)
    assert failed.status == ExecutionStatus.FAILED
    assert "has no column 'rate'" in failed.error_message
    assert rows(target_url, "films_copy") == []
    # when: the target is fixed
    execute(target_url, "DROP TABLE films_copy")
    execution = run(job)
    # then: the pending change log of the failed run is applied too
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert rows(target_url, "films_copy") == rows(sqlite_url, "films")


def test_timestamp_strategy_with_equal_timestamps_at_the_boundary(
    sqlite_url: str, target_url: str
) -> None:
    # given
    execute(
        sqlite_url,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INTEGER, ts INTEGER)",
        "INSERT INTO orders VALUES (1, 10, 100), (2, 20, 200), (3, 30, 300)",
    )
    job = direct_job(
        sqlite_url, target_url, sql="SELECT * FROM orders", target="orders", timestamp_col="ts"
    )
    first = run(job)
    job.refresh_from_db()
    assert job.last_ts_pointer == "300"
    assert first.last_ts_pointer == "300"
    # a row arrives later with the pointer's exact timestamp, another past it
    execute(sqlite_url, "INSERT INTO orders VALUES (4, 40, 300), (5, 50, 301)")
    # when
    second = run(job)
    # then: only rows 4 and 5 are sent (row 3 at ts 300 was already sent)
    assert second.record_count == 2, messages(second)
    assert rows(target_url, "orders") == rows(sqlite_url, "orders")
    job.refresh_from_db()
    assert job.last_ts_pointer == "301"
    # and a third run with nothing new sends nothing
    assert run(job).record_count == 0


def test_timestamp_strategy_without_keys_appends_once(sqlite_url: str, target_url: str) -> None:
    # given
    execute(
        sqlite_url,
        "CREATE TABLE log (msg TEXT, ts INTEGER)",
        "INSERT INTO log VALUES ('a', 1), ('b', 2)",
    )
    job = direct_job(
        sqlite_url, target_url, sql="SELECT * FROM log", target="log", keys="", timestamp_col="ts"
    )
    run(job)
    execute(sqlite_url, "INSERT INTO log VALUES ('c', 2), ('d', 3)")
    # when
    run(job)
    # then: no row lost, none doubled
    assert rows(target_url, "log", "ts, msg") == rows(sqlite_url, "log", "ts, msg")


def test_deleted_records_sql_propagates_tombstones(sqlite_url: str, target_url: str) -> None:
    # given
    execute(
        sqlite_url,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, ts INTEGER)",
        "CREATE TABLE items_deleted (id INTEGER, ts INTEGER)",
        "INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)",
    )
    job = direct_job(
        sqlite_url,
        target_url,
        sql="SELECT * FROM items",
        target="items",
        timestamp_col="ts",
        json_data={
            "DeletedRecordsMethod": 1,
            "DeletedRecordsSQL": "SELECT id, ts FROM items_deleted",
        },
    )
    run(job)
    execute(sqlite_url, "DELETE FROM items WHERE id = 2", "INSERT INTO items_deleted VALUES (2, 4)")
    # when
    execution = run(job)
    # then
    assert execution.delete_count == 1
    assert rows(target_url, "items") == rows(sqlite_url, "items")
    job.refresh_from_db()
    assert job.last_ts_del_pointer == "4"
    # a key deleted earlier and inserted again is not deleted a second time
    execute(sqlite_url, "INSERT INTO items VALUES (2, 'back', 5)")
    run(job)
    assert rows(target_url, "items") == rows(sqlite_url, "items")


def test_applied_change_logs_are_removed_unless_kept(sqlite_url: str, target_url: str) -> None:
    # given
    seed_films(sqlite_url, 3)
    removed = direct_job(sqlite_url, target_url, sql="SELECT * FROM films", target="a")
    kept = direct_job(
        sqlite_url,
        target_url,
        sql="SELECT * FROM films",
        target="b",
        json_data={"KeepChangedLogFiles": True},
    )
    # when
    first, second = run(removed), run(kept)
    # then
    assert not Path(first.package_file).exists()
    assert Path(second.package_file).exists()


def test_reader_and_writer_pipelines_run_on_each_batch(sqlite_url: str, target_url: str) -> None:
    # given: the reader keeps cheap films only, the writer drops a column (as a JSON string)
    seed_films(sqlite_url, 20)
    job = direct_job(
        sqlite_url,
        target_url,
        sql="SELECT * FROM films",
        target="films_copy",
        reader={"PipelineDef": [{"Name": "DataFilter", "FilterType": 0, "Filter": "rate < 2"}]},
        writer={"PipelineDef": '[{"Name": "DataRemoveColumns", "Columns": "updated"}]'},
    )
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert rows(target_url, "films_copy") == [
        row[:3] for row in rows(sqlite_url, "films") if row[2] < 2
    ]


def test_initialize_runs_once_in_full(sqlite_url: str, target_url: str) -> None:
    # given
    seed_films(sqlite_url, 10)
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM films", target="films_copy")
    run(job)
    Job.objects.filter(pk=job.pk).update(definition={**job.definition, "Initialize": True})
    job.refresh_from_db()
    # when
    first, second = run(job), run(job)
    # then
    assert (first.record_count, second.record_count) == (10, 0)
    job.refresh_from_db()
    assert job.definition["Initialize"] is False


def test_a_pointer_set_by_hand_is_parsed_and_rows_after_it_are_sent(
    sqlite_url: str, target_url: str
) -> None:
    # given: text timestamps in SQLite, and a pointer a client moved back through the API
    execute(
        sqlite_url,
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT, ts TEXT)",
        "INSERT INTO ev VALUES (1, 'a', '2024-01-01T10:00:00'), (2, 'b', '2024-01-03T10:00:00')",
    )
    job = direct_job(
        sqlite_url, target_url, sql="SELECT * FROM ev", target="ev", timestamp_col="ts"
    )
    run(job)
    execute(target_url, "DELETE FROM ev")
    Job.objects.filter(pk=job.pk).update(last_ts_pointer="2024-01-02T00:00:00")
    # when
    execution = run(job)
    # then: the row past the hand-set pointer is sent again, the older one is not
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert rows(target_url, "ev") == [(2, "b", "2024-01-03T10:00:00")]
    job.refresh_from_db()
    assert job.last_ts_pointer == "2024-01-03T10:00:00"


def test_changes_spread_over_an_ordered_table_are_all_found(
    sqlite_url: str, target_url: str
) -> None:
    # given: several batches of keys read in order (the stage store's aligned fast path)
    seed_films(sqlite_url, 25_000)
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM films ORDER BY id", target="f")
    run(job)
    execute(
        sqlite_url,
        "UPDATE films SET rate = rate + 1 WHERE id % 997 = 0",
        "DELETE FROM films WHERE id % 1999 = 0",
        "INSERT INTO films VALUES (30000, 'late', 1.0, 1)",
    )
    # when
    execution = run(job)
    # then
    changed = len([i for i in range(1, 25_001) if i % 997 == 0 and i % 1999 != 0])
    assert (execution.record_count, execution.delete_count) == (changed + 1, 25_000 // 1999)
    assert rows(target_url, "f") == rows(sqlite_url, "films")


def test_changes_after_an_unchanged_run_of_an_ordered_table_are_found(
    sqlite_url: str, target_url: str
) -> None:
    # given: an unchanged second run (its batches match the first run's segments)
    seed_films(sqlite_url, 25_000)
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM films ORDER BY id", target="f")
    run(job)
    unchanged = run(job)
    assert (unchanged.record_count, unchanged.delete_count) == (0, 0)
    execute(
        sqlite_url,
        "UPDATE films SET title = title || '!' WHERE id IN (1, 10000, 10001, 25000)",
        "DELETE FROM films WHERE id = 20000",
    )
    # when
    execution = run(job)
    # then
    assert (execution.record_count, execution.delete_count) == (4, 1)
    assert rows(target_url, "f") == rows(sqlite_url, "films")


def test_an_unchanged_batch_is_not_keyed_nor_pickled_row_by_row_exact_changes_are_found(
    sqlite_url: str, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import math

    from jobs.sync import detect

    # given: an ordered table of four batches, its values in a column without affinity (SQLite
    # keeps 0, 0.0 and '0' apart there), loaded once
    execute(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
    execute(
        sqlite_url,
        "INSERT INTO t VALUES (:id, :v)",
        params=[{"id": i, "v": i / 4} for i in range(1, 35_001)],
    )
    execute(
        sqlite_url,
        "UPDATE t SET v = NULL WHERE id = 2",
        "UPDATE t SET v = '' WHERE id = 3",
        "UPDATE t SET v = 0 WHERE id = 12001",
        "UPDATE t SET v = 0.0 WHERE id = 12002",
    )
    job = direct_job(sqlite_url, target_url, sql="SELECT id, v FROM t ORDER BY id", target="t")
    run(job)
    pickled: list[int] = []
    keyed: list[int] = []
    pickle_rows, batch_keys = detect.pickle_rows, detect.batch_keys

    def counted(rows: list[tuple]) -> tuple[bytes, list[int]]:
        pickled.append(len(rows))
        return pickle_rows(rows)

    def counted_keys(rows: list[tuple], positions: list[int]) -> list[Any]:
        keyed.append(len(rows))
        return batch_keys(rows, positions)

    monkeypatch.setattr(detect, "pickle_rows", counted)
    monkeypatch.setattr(detect, "batch_keys", counted_keys)
    # when: nothing changed
    unchanged = run(job)
    # then: every batch matched its segment by its ends and digest: no key gathered, no row
    # pickled alone
    assert (unchanged.record_count, unchanged.delete_count) == (0, 0)
    assert pickled == keyed == []
    # given: changes the digest must not miss: NULL to '', '' to 0, 0 to 0.0, a REAL by one
    # ulp; and a value written again unchanged
    execute(
        sqlite_url,
        "UPDATE t SET v = '' WHERE id = 2",
        "UPDATE t SET v = 0 WHERE id = 3",
        "UPDATE t SET v = 0.0 WHERE id = 12001",
        "UPDATE t SET v = 0.0 WHERE id = 12002",
        f"UPDATE t SET v = {math.nextafter(24_999 / 4, 0)!r} WHERE id = 24999",
    )
    # when
    execution = run(job)
    # then: the three changed batches were hashed row by row, the last one by its digest alone
    assert (execution.record_count, execution.delete_count) == (4, 0)
    assert pickled == keyed == [10_000, 10_000, 10_000]
    assert rows(target_url, "t") == rows(sqlite_url, "t")


def test_stage_store_skips_only_batches_equal_to_a_batch_of_the_last_run(tmp_path: Path) -> None:
    from jobs.sync.stage import StageStore

    def unhashed() -> list[int]:
        raise AssertionError("the rows were hashed")

    store = StageStore(tmp_path / "stage.sqlite3")
    try:
        # given: a first run read in key order
        store.begin(full=False)
        assert store.changed([1, 2, 3], [10, 20, 30], 111) == [0, 1, 2]
        assert store.changed([4, 5, 6], [40, 50, 60], 222) == [0, 1, 2]
        store.commit()
        # when / then: an equal batch is not hashed; a different one is compared row by row
        store.begin(full=False)
        assert store.changed([1, 2, 3], unhashed, 111) == []
        assert store.changed([4, 5, 6], [40, 51, 60], 333) == [1]
        assert list(store.deleted(10)) == []
        store.commit()
        # a run out of key order compares row by row and keeps no segment
        store.begin(full=False)
        assert store.changed([4, 5, 6], unhashed, 333) == []
        assert store.changed([1, 2, 3], [10, 20, 31], 444) == [2]
        store.commit()
        store.begin(full=False)
        hashed: list[int] = []
        assert store.changed([1, 2, 3], lambda: hashed.append(1) or [10, 20, 31], 444) == []
        assert hashed == [1]
        # a rolled-back run changes nothing
        assert store.changed([4, 5, 6], [0, 0, 0], 555) == [0, 1, 2]
        store.rollback()
        store.begin(full=False)
        assert store.changed([4, 5, 6], [40, 51, 60], 555) == []
        store.rollback()
    finally:
        store.close()


def test_stage_store_keeps_the_row_hash_of_stores_written_before_xxh3(tmp_path: Path) -> None:
    from jobs.sync.changelog import pickle_rows
    from jobs.sync.stage import HASH_CRC_ADLER, HASH_XXH3, StageStore, hashes_of, xxh3_hashes_of

    pickled, ends = pickle_rows([(1, "a", 1.5), (2, "b", None)])
    store = StageStore(tmp_path / "stage.sqlite3")
    try:
        # given: a store rebuilt by a full run uses XXH3
        store.begin(full=False)
        assert store.full and store.hash_name == HASH_XXH3
        store.changed([1, 2], store.row_hashes(pickled, ends))
        store.commit()
        store.begin(full=False)
        assert store.hash_name == HASH_XXH3
        assert store.row_hashes(pickled, ends) == xxh3_hashes_of(pickled, ends)
        assert store.changed([1, 2], store.row_hashes(pickled, ends)) == []
        store.rollback()
        # when: a store from before (no row_hash entry) is compared
        store._db.execute("DELETE FROM meta")
        store.begin(full=False)
        # then: its CRC-32 + Adler-32 hashes are kept until its next full run
        assert store.hash_name == HASH_CRC_ADLER
        assert store.row_hashes(pickled, ends) == hashes_of(pickled, ends)
        assert hashes_of(pickled, ends) != xxh3_hashes_of(pickled, ends)
        store.rollback()
        store.begin(full=True)
        assert store.hash_name == HASH_XXH3
        store.rollback()
    finally:
        store.close()


def test_reposting_a_dynamic_job_with_its_guid_does_not_reapply_earlier_change_logs(
    sqlite_url: str, target_url: str
) -> None:
    # given a dynamic append job (no keys) that ran once over 20 rows, change logs kept
    seed_films(sqlite_url, 20)
    body = {
        "JobReader": {
            "Guid": "6c1d4b52-0a55-4c1e-9d1b-2f1f6f7d0a01",
            "SqlRead": "SELECT * FROM films",
            "ConnectionString": sqlite_url,
            "Path": "dyn",
            "JsonData": {"KeepChangedLogFiles": True},
        },
        "JobWriter": {"ConnectionString": target_url, "TargetObject": "films_copy"},
    }

    def post_and_run() -> None:
        _, execution = definitions.create_dynamic_job(json.loads(json.dumps(body)), {})
        assert execution is not None
        claimed = runner.claim(execution.pk)
        assert claimed is not None
        runner.run_claimed(claimed)
        claimed.refresh_from_db()
        assert claimed.status == ExecutionStatus.SUCCEEDED, claimed.error_message

    post_and_run()
    assert len(rows(target_url, "films_copy")) == 20
    # when the same definition is posted again under the same Guid
    post_and_run()
    # then only this run's 20 rows are appended: the first change log is not applied again
    assert len(rows(target_url, "films_copy")) == 40


def test_a_writer_compiles_its_upsert_once_per_apply_not_per_frame(
    target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a change log of five frames (a source whose batches are small)
    compiled: list[str] = []
    original = writer._Statements._sql

    def counting(self: writer._Statements, statement: object) -> str:
        sql = original(self, statement)
        compiled.append(sql)
        return sql

    monkeypatch.setattr(writer._Statements, "_sql", counting)
    engine = create_db_engine("", target_url)
    header = Header("items", "1000", [Column("id", "integer"), Column("name")], ["id"])
    frames = [Frame(UPSERT, [(i, f"item {i}")]) for i in range(1, 6)]
    settings_ = writer.WriterSettings(target_object="items", writer_guid="w-once", keys=["id"])
    # when
    result = writer.apply_frames(engine, header, iter(frames), "1000", settings_, ApplyHooks())
    engine.dispose()
    # then every frame went through the one upsert compiled for the apply
    assert result.applied and result.upserts == 5
    assert len([sql for sql in compiled if "ON CONFLICT" in sql]) == 1
    assert rows(target_url, "items") == [(i, f"item {i}") for i in range(1, 6)]
