"""Execution leases (jobs/leases.py): a dead worker's run is taken over and finishes, with the
target equal to the source; Celery shows the job and the outcome."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from celery.signals import task_failure, task_received
from django.conf import settings
from django.utils import timezone

from jobs import leases, runner, services
from jobs.models import (
    AccessScope,
    Execution,
    ExecutionStatus,
    Job,
    JobKind,
    JobStatus,
    LogEntry,
)
from jobs.schedule.scheduler import Scheduler
from jobs.sync import run as run_module
from jobs.sync.changelog import UPSERT, Frame, Header
from jobs.sync.consume import Consumer, SeenStore, seen_path
from jobs.sync.plan import reader_spec
from jobs.sync.stage import StageStore
from jobs.systems.base import ApplyHooks, Delivery, LeaseLost
from jobs.systems.batch import Column
from jobs.systems.db.url import create_db_engine
from jobs.systems.db.writer import (
    WriterSettings,
    applied_execution_id,
    apply_frames,
    take_fence,
)
from jobs.tasks import JobFailed
from tests.conftest import key_client
from tests.syncdb import direct_job, execute, rows

DEAD = "deadhost:4242"


def seed(url: str, count: int) -> None:
    execute(url, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    execute(
        url,
        "INSERT INTO items VALUES (:id, :name)",
        params=[{"id": i, "name": f"item {i}"} for i in range(count)],
    )


def dead_run(job: Job, *, expired: bool = True) -> Execution:
    """A run of `job` claimed by a worker that has since died (its lease no longer renewed)."""
    execution = services.new_execution(job)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    ago = timedelta(seconds=-1 if expired else 60)
    Execution.objects.filter(pk=execution.pk).update(
        status=ExecutionStatus.RUNNING,
        worker=DEAD,
        started_at=timezone.now(),
        lease_expires_at=timezone.now() + ago,
    )
    return execution


def wait_until_finished(execution: Execution, seconds: float = 60) -> Execution:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        execution.refresh_from_db()
        if execution.is_finished:
            return execution
        time.sleep(0.1)
    raise AssertionError(f"execution {execution.pk} still {execution.status}")


def notes(execution: Execution) -> list[str]:
    return list(
        LogEntry.objects.filter(execution=execution)
        .order_by("sequence")
        .values_list("message", flat=True)
    )


@pytest.mark.django_db
def test_a_claim_takes_a_lease_and_a_live_lease_keeps_others_out(sqlite_url, tmp_path):
    job = direct_job(sqlite_url, sqlite_url, sql="SELECT 1", target="t")
    execution = services.new_execution(job)
    # when a worker claims it
    claimed = runner.claim(execution.pk)
    # then it holds a lease into the future, and nobody else can claim it
    assert claimed is not None and claimed.lease_expires_at is not None
    assert claimed.lease_expires_at > timezone.now() + timedelta(seconds=20)
    assert runner.claim(execution.pk) is None
    # and its renewal moves the lease on
    Execution.objects.filter(pk=execution.pk).update(lease_expires_at=timezone.now())
    assert leases.renew(claimed.worker) == 1
    claimed.refresh_from_db()
    assert claimed.lease_expires_at > timezone.now() + timedelta(seconds=20)


@pytest.mark.django_db
def test_a_redelivered_task_takes_over_an_expired_run_and_closes_its_inline_writer(
    sqlite_url, tmp_path
):
    job = direct_job(sqlite_url, sqlite_url, sql="SELECT 1", target="t")
    execution = dead_run(job)
    writer = services.new_execution(job.direct_writer, guid=execution.guid)
    Execution.objects.filter(pk=writer.pk).update(status=ExecutionStatus.RUNNING, worker=DEAD)
    # when the task is delivered again after the lease ran out
    taken = runner.claim(execution.pk)
    # then this worker runs it, the dead worker's writer row is closed, and the log says why
    assert taken is not None and taken.worker == runner.worker_name() and taken.takeovers == 1
    writer.refresh_from_db()
    assert writer.status == ExecutionStatus.FAILED
    assert writer.error_message == leases.ORPHANED_WRITER_MESSAGE
    assert f"worker {DEAD} stopped renewing its lease" in notes(taken)[-1]


@pytest.mark.django_db
def test_an_unexpired_run_is_left_to_its_worker(sqlite_url):
    job = direct_job(sqlite_url, sqlite_url, sql="SELECT 1", target="t")
    execution = dead_run(job, expired=False)
    assert runner.claim(execution.pk) is None
    assert leases.reap() == []


@pytest.mark.django_db(transaction=True)
def test_the_reaper_resumes_a_dead_workers_run_to_the_end(
    embedded_worker: Any, sqlite_url: str, tmp_path: Path
):
    # given a direct job whose worker died while running it
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    seed(sqlite_url, 2_000)
    job = direct_job(sqlite_url, target, sql="SELECT * FROM items", target="items")
    execution = dead_run(job)
    # when the scheduler's leader reaps
    scheduler = Scheduler(holder="reaper-test")
    scheduler.is_leader = True
    assert [e.pk for e in scheduler.reap_dead_runs()] == [execution.pk]
    # then the same execution runs again in a live worker and the target equals the source
    done = wait_until_finished(execution)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error_message
    assert done.takeovers == 1 and done.worker != DEAD
    assert rows(target, "items") == rows(sqlite_url, "items")
    job.refresh_from_db()
    assert job.status == JobStatus.READY


@pytest.mark.django_db(transaction=True)
def test_job_start_on_a_job_whose_run_is_dead_runs_it(
    embedded_worker: Any, sqlite_url: str, tmp_path: Path
):
    client, _ = key_client(name="ops", scope=AccessScope.ALL)
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    seed(sqlite_url, 500)
    job = direct_job(sqlite_url, target, sql="SELECT * FROM items", target="items")
    execution = dead_run(job)
    # when a client starts the job
    response = client.post(f"/job/start?guid={job.guid}")
    # then it answers OK and the dead run finishes
    assert response.status_code == 200
    done = wait_until_finished(execution)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error_message
    assert rows(target, "items") == rows(sqlite_url, "items")


@pytest.mark.django_db(transaction=True)
def test_celery_shows_the_job_and_a_failed_run_is_a_failed_task(
    embedded_worker: Any, tmp_path: Path
):
    # given a job whose source cannot be read
    missing = f"sqlite:///{tmp_path / 'missing' / 'nowhere.sqlite3'}"
    job = direct_job(missing, missing, sql="SELECT * FROM nowhere", target="t")
    names: list[str] = []
    failures: list[BaseException] = []

    def on_received(request: Any, **_: Any) -> None:
        names.append(request.name)

    def on_failure(exception: BaseException, **_: Any) -> None:
        failures.append(exception)

    task_received.connect(on_received, weak=False)
    task_failure.connect(on_failure, weak=False)
    try:
        execution = services.start_job(job)
        assert execution is not None
        done = wait_until_finished(execution)
        deadline = time.monotonic() + 10
        while not failures and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        task_received.disconnect(on_received)
        task_failure.disconnect(on_failure)
    # then the task carries the job's key, and failed as the run did
    assert done.status == ExecutionStatus.FAILED
    assert names == [f"job {job.job_key}"]
    (failure,) = failures
    assert isinstance(failure, JobFailed)
    assert str(failure) == f"{job.job_key}: {done.error_message}"
    assert job.kind == JobKind.READER


# -- a paused worker, resumed after its run was taken over ----------------------------------


def _taken_over_while_paused(job: Job) -> Execution:
    """A run this process claimed, then lost: its lease ran out (as while SIGSTOPped) and
    another worker took it over. Returns this process's (stale) view of its claim."""
    execution = services.new_execution(job)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    mine = runner.claim(execution.pk)
    assert mine is not None
    Execution.objects.filter(pk=execution.pk).update(lease_expires_at=timezone.now())
    assert leases.claim(execution.pk, "otherhost:77") is not None
    return mine


@pytest.mark.django_db
def test_a_resumed_worker_whose_run_was_taken_over_stops_and_writes_nothing(
    sqlite_url: str, tmp_path: Path
):
    # given a run this worker lost while it was paused
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    seed(sqlite_url, 500)
    job = direct_job(sqlite_url, target, sql="SELECT * FROM items", target="items")
    stale = _taken_over_while_paused(job)
    # when it resumes and goes on with the run
    runner.run_claimed(stale)
    # then it wrote nothing: no rows, no change log, and the run is still the new owner's
    execution = Execution.objects.get(pk=stale.pk)
    assert execution.status == ExecutionStatus.RUNNING and execution.worker == "otherhost:77"
    assert execution.finished_at is None and execution.execution_id == ""
    assert not list(Path(settings.DATA_DIR).rglob(f"{job.job_key}_*.eds"))
    assert not Path(tmp_path / "target.sqlite3").exists() or rows_or_none(target) is None
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def rows_or_none(url: str) -> list[tuple] | None:
    try:
        return rows(url, "items")
    except Exception:  # no such table: nothing was written
        return None


@pytest.mark.django_db
def test_a_progress_or_finish_of_a_superseded_claim_raises_lease_lost(sqlite_url: str):
    job = direct_job(sqlite_url, sqlite_url, sql="SELECT 1", target="t")
    stale = _taken_over_while_paused(job)
    context = runner.ExecutionContext(stale)
    with pytest.raises(LeaseLost):
        context.progress(record_count=5)
    with pytest.raises(LeaseLost):
        context.check_lease()
    with pytest.raises(LeaseLost):
        runner.finish(stale, ExecutionStatus.SUCCEEDED)
    assert Execution.objects.get(pk=stale.pk).record_count == 0


@pytest.mark.postgres
def test_a_sql_target_refuses_the_commit_of_a_claim_superseded_mid_apply(postgres_url: str):
    # given a writer applying under an older claim
    engine = create_db_engine("", postgres_url)
    header = Header("items", "1000", [Column("id", "int64"), Column("name")], ["id"])
    frames = [Frame(UPSERT, [(i, f"item {i}")]) for i in range(1, 6)]
    settings_ = WriterSettings(target_object="items", writer_guid="w-fence", keys=["id"])
    old, new = "000000000000001.a", "000000000000002.a"

    def superseded(upserts: int, deletes: int) -> None:
        # when, after its first frame, a later claim takes the fence (the run taken over)
        if upserts == 1:
            take_fence(create_db_engine("", postgres_url), "w-fence", new)

    # then its transaction is refused at commit: nothing of it is in the target
    with pytest.raises(LeaseLost, match="superseded"):
        apply_frames(
            engine, header, iter(frames), "1000", settings_,
            ApplyHooks(progress=superseded, fence=old),
        )  # fmt: skip
    assert rows(postgres_url, "items") == []
    assert applied_execution_id(engine, "w-fence") == ""
    # and the older claim cannot even start again, while the new one applies
    with pytest.raises(LeaseLost):
        apply_frames(engine, header, iter(frames), "1000", settings_, ApplyHooks(fence=old))
    result = apply_frames(engine, header, iter(frames), "1001", settings_, ApplyHooks(fence=new))
    assert result.applied and len(rows(postgres_url, "items")) == 5
    engine.dispose()


# -- a reader paused past its lease: publication and stage ----------------------------------


def _append_only_job(source: str, target: str) -> Job:
    """A direct job whose target has no key (every applied row is a new row, so a change log
    applied twice doubles them) and whose writer runs after the read (an InitScript), keeping
    its change logs so they can be counted."""
    seed(source, 500)
    execute(target, "CREATE TABLE items (id INTEGER, name TEXT)")
    return direct_job(
        source, target, sql="SELECT * FROM items", target="items",
        json_data={"KeepChangedLogFiles": True}, writer={"InitScript": "SELECT 1"},
    )  # fmt: skip


def _take_over_and_finish(execution: Execution) -> Execution:
    """What another worker does while this one is paused: the lease runs out, it claims the run
    and runs it to the end."""
    Execution.objects.filter(pk=execution.pk).update(lease_expires_at=timezone.now())
    theirs = leases.claim(execution.pk, "otherhost:77")
    assert theirs is not None
    started = time.monotonic()
    runner.run_claimed(theirs)
    theirs.took = time.monotonic() - started  # type: ignore[attr-defined]
    return theirs


@pytest.mark.django_db
def test_a_reader_paused_right_before_publishing_never_publishes_once_taken_over(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    job = _append_only_job(sqlite_url, target)
    execution = services.new_execution(job)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    mine = runner.claim(execution.pk)
    assert mine is not None
    # given this worker's reader paused past its lease right after its last lease check, the
    # change log sealed and about to be published, while another worker takes the run over
    # and finishes it
    runner_module_check = runner.ExecutionContext.check_lease
    taken: list[Execution] = []

    def paused_after_the_check(self: runner.ExecutionContext) -> None:
        runner_module_check(self)
        if self.execution.worker == mine.worker and finishing_reader and not taken:
            taken.append(self.execution)  # once: not in theirs
            taken[0] = _take_over_and_finish(self.execution)

    finishing_reader: list[bool] = []
    original_finish = run_module._finish_reader

    def finish_reader(*args: Any, **kwargs: Any) -> str:
        finishing_reader.append(True)
        return original_finish(*args, **kwargs)

    monkeypatch.setattr(runner.ExecutionContext, "check_lease", paused_after_the_check)
    monkeypatch.setattr(run_module, "_finish_reader", finish_reader)
    # when it resumes and goes on publishing
    runner.run_claimed(mine)
    # then the run is the new owner's, finished; one change log was published, the new
    # owner's; the append-only target has each row once
    done = Execution.objects.get(pk=execution.pk)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error_message
    assert done.worker == "otherhost:77"
    logs = sorted(p.name for p in Path(settings.DATA_DIR).rglob(f"{job.job_key}_*.eds*"))
    assert logs == [f"{job.job_key}_{done.execution_id}.eds"]
    assert sorted(rows(target, "items")) == sorted(rows(sqlite_url, "items"))
    # and a next run finds nothing new: the stage is the new owner's
    again = runner.claim(services.new_execution(job).pk)
    assert again is not None
    runner.run_claimed(again)
    again.refresh_from_db()
    assert again.status == ExecutionStatus.SUCCEEDED and again.record_count == 0
    assert len(rows(target, "items")) == 500


@pytest.mark.django_db
def test_a_reader_frozen_mid_read_does_not_hold_up_the_new_owner(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    job = _append_only_job(sqlite_url, target)
    execution = services.new_execution(job)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    mine = runner.claim(execution.pk)
    assert mine is not None
    # given this worker frozen mid-read, its stage's write transaction open, while another
    # worker takes the run over and runs it
    original_changed = StageStore.changed
    taken: list[Execution] = []

    def frozen_mid_read(self: StageStore, *args: Any, **kwargs: Any) -> list[int]:
        changed = original_changed(self, *args, **kwargs)
        if not taken:
            taken.append(Execution.objects.get(pk=execution.pk))  # once: not in theirs
            taken[0] = _take_over_and_finish(taken[0])
        return changed

    monkeypatch.setattr(StageStore, "changed", frozen_mid_read)
    runner.run_claimed(mine)
    # then the new owner did not wait for the frozen one's stage lock: it ran in a stage of its
    # own and finished (before: it waited 30 s, then failed with "database is locked")
    (theirs,) = taken
    done = Execution.objects.get(pk=execution.pk)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error_message
    assert theirs.took < 20, theirs.took  # type: ignore[attr-defined]
    print(f"\nnew owner beside a reader frozen mid-read: ran in {theirs.took:.2f} s")  # type: ignore[attr-defined]
    assert sorted(rows(target, "items")) == sorted(rows(sqlite_url, "items"))
    # and the frozen worker's stage is gone once the new one has committed a run: the next
    # run compares with the new owner's and finds nothing new
    stages = list((Path(settings.DATA_DIR) / "stage").glob(f"{job.guid}*.sqlite3"))
    assert [p.name for p in stages] == [f"{job.guid}.gen-{leases.fence_token(done)}.sqlite3"]
    monkeypatch.setattr(StageStore, "changed", original_changed)
    again = runner.claim(services.new_execution(job).pk)
    assert again is not None
    runner.run_claimed(again)
    again.refresh_from_db()
    assert again.status == ExecutionStatus.SUCCEEDED and again.record_count == 0


@pytest.mark.django_db
def test_a_run_published_before_its_worker_paused_is_rolled_forward_not_read_again(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    job = _append_only_job(sqlite_url, target)
    execution = services.new_execution(job)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    mine = runner.claim(execution.pk)
    assert mine is not None
    # given this worker paused right after its publication committed (the change log still
    # under its .part name, the stage not committed), and the run taken over meanwhile
    original_commit = StageStore.commit
    taken: list[Execution] = []

    def paused_after_publishing(self: StageStore) -> None:
        if not taken:
            taken.append(Execution.objects.get(pk=execution.pk))  # once: not in theirs
            taken[0] = _take_over_and_finish(taken[0])
        original_commit(self)

    monkeypatch.setattr(StageStore, "commit", paused_after_publishing)
    runner.run_claimed(mine)
    # then the new owner gave the published log its name and applied it without reading
    # again: one change log, each row once in the append-only target
    done = Execution.objects.get(pk=execution.pk)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error_message
    assert done.worker == "otherhost:77"
    assert "published before the takeover: not read again" in " ".join(notes(done))
    logs = sorted(p.name for p in Path(settings.DATA_DIR).rglob(f"{job.job_key}_*.eds*"))
    assert logs == [Path(done.package_file).name]
    assert sorted(rows(target, "items")) == sorted(rows(sqlite_url, "items"))
    # and the resumed worker's stage commit stands: the next run finds nothing new
    again = runner.claim(services.new_execution(job).pk)
    assert again is not None
    runner.run_claimed(again)
    again.refresh_from_db()
    assert again.status == ExecutionStatus.SUCCEEDED and again.record_count == 0
    assert len(rows(target, "items")) == 500


@pytest.mark.django_db
def test_a_superseded_claim_adds_no_line_to_the_log(sqlite_url: str):
    job = direct_job(sqlite_url, sqlite_url, sql="SELECT 1", target="t")
    stale = _taken_over_while_paused(job)
    before = notes(stale)
    # when the resumed worker logs
    with pytest.raises(LeaseLost):
        runner.ExecutionContext(stale).log("a line from the past")
    # then the run's log is as the new owner left it
    assert notes(stale) == before
    # while the new owner, and a note on a finished run (a trigger's), still log
    theirs = Execution.objects.get(pk=stale.pk)
    runner.ExecutionContext(theirs).log("the owner's line")
    runner.finish(theirs, ExecutionStatus.SUCCEEDED)
    runner.ExecutionContext(theirs).log("a trigger's note")
    assert notes(stale)[-2:] == ["the owner's line", "a trigger's note"]


@pytest.mark.django_db
def test_a_superseded_consumer_publishes_no_change_log(sqlite_url: str):
    job = direct_job(sqlite_url, sqlite_url, sql="SELECT 1", target="t")
    stale = _taken_over_while_paused(job)
    source = SimpleNamespace(columns=[Column("id", "integer")], batch_count=10, flush_seconds=1)
    consumer = Consumer(
        runner.ExecutionContext(stale), job, reader_spec(job), source, lambda batch: batch
    )
    seen = SeenStore(seen_path(job))
    # when the resumed consumer logs the batch it had received
    with pytest.raises(LeaseLost):
        consumer._take([Delivery("m1", [(1,)]), Delivery("m2", [(2,)])], seen)
    seen.close()
    # then no change log of it is there, not even its sealed .part
    assert not list(Path(settings.DATA_DIR).rglob(f"{job.job_key}_*.eds*"))
