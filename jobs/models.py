"""The shared domain: connection strings, access keys, jobs, executions, log entries, agent state.

Both vendor apps are views of these tables: a DataZen reader run, a direct job's writer and a
DataFlux flow execution are all `Execution` rows with `LogEntry` rows.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any

from django.db import models
from django.utils import timezone

from jobs.crypto import decrypt_secret, encrypt_secret


def new_guid() -> str:
    """DataZen guids: 32 lowercase hex digits, no dashes."""
    return uuid.uuid4().hex


def new_execution_id() -> str:
    """DataZen ExecutionIds are epoch milliseconds at the time the change log is created."""
    return str(time.time_ns() // 1_000_000)


class ConnectionType(models.TextChoices):
    DB = "DB", "Database"
    DRIVE = "Drive", "Drive"
    HTTP = "HTTP", "HTTP"
    MESSAGING = "Messaging", "Messaging"
    BIGDATA = "BigData", "Big data"


class ConnectionString(models.Model):
    """A named connection string; the secret part is stored as a Fernet token only."""

    key = models.CharField(max_length=200, unique=True)
    system = models.CharField(max_length=100, help_text="e.g. SQLite, PostgreSQL, MySQL, HTTP")
    connection_type = models.CharField(max_length=20, choices=ConnectionType.choices)
    display_name = models.CharField(max_length=200, blank=True)
    display_value = models.CharField(
        max_length=500, blank=True, help_text="A non-secret hint shown in lists (DisplayCS)."
    )
    encrypted_value = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    @property
    def value(self) -> str:
        """The decrypted connection string."""
        return decrypt_secret(self.encrypted_value)

    @value.setter
    def value(self, plain: str) -> None:
        self.encrypted_value = encrypt_secret(plain)


class AccessScope(models.TextChoices):
    ALL = "all", "Agent and jobs API"
    AGENT = "agent", "Agent API only"
    JOBS = "jobs", "Jobs API only"


class AccessKeyQuerySet(models.QuerySet["AccessKey"]):
    def authenticate(self, presented: str) -> AccessKey | None:
        """The active key whose hash matches `presented`, or None.

        The lookup is by the SHA-256 of the presented key, so how long it takes does not
        depend on how much of a stored key the presented one shares.
        """
        digest = AccessKey.hash_key(presented)
        key = self.filter(key_hash=digest, is_active=True).first()
        if key is None or not hmac.compare_digest(key.key_hash, digest):
            return None
        return key


class AccessKey(models.Model):
    """A DataZen shared access key; only its hash is stored."""

    name = models.CharField(max_length=200)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=8, editable=False, help_text="First characters, to tell keys apart."
    )
    scope = models.CharField(max_length=10, choices=AccessScope.choices, default=AccessScope.ALL)
    read_only = models.BooleanField(default=False, help_text="Only GET calls are allowed.")
    can_decrypt = models.BooleanField(
        default=False, help_text="May read decrypted connection strings."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = AccessKeyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()

    @classmethod
    def generate(cls, name: str, **flags: Any) -> tuple[AccessKey, str]:
        """Create a key; the raw key is returned once and never stored."""
        raw = secrets.token_hex(24)
        key = cls.objects.create(name=name, key_hash=cls.hash_key(raw), prefix=raw[:6], **flags)
        return key, raw

    def allows(self, api: str, method: str) -> bool:
        """Whether this key may call `api` ("agent" or "jobs") with HTTP `method`."""
        if self.read_only and method not in ("GET", "HEAD", "OPTIONS"):
            return False
        return self.scope in (AccessScope.ALL, api)


class JobKind(models.TextChoices):
    READER = "reader", "Job reader"
    WRITER = "writer", "Job writer"
    FLOW = "flow", "Job flow (DataFlux)"


class JobStatus(models.TextChoices):
    READY = "ready", "Ready"
    RUNNING = "running", "Running"


class Job(models.Model):
    """A DataZen job reader or writer, or a DataFlux job flow.

    `definition` keeps the whole vendor object as it was sent, so unknown fields round-trip;
    the columns beside it are what the gateway queries, schedules and maintains. A direct job
    is a reader whose `direct_writer` points at its writer.
    """

    guid = models.CharField(max_length=64, unique=True, default=new_guid)
    kind = models.CharField(max_length=10, choices=JobKind.choices)
    job_key = models.CharField(max_length=400)
    definition = models.JSONField(default=dict, blank=True)
    content = models.TextField(blank=True, help_text="Job flow XML (flows only).")
    is_dynamic = models.BooleanField(default=False)
    # The gateway process that created a dynamic job; dynamic jobs of earlier boots are purged.
    boot_id = models.CharField(max_length=32, blank=True)
    active = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.READY)
    connection_key = models.CharField(max_length=400, blank=True, db_index=True)
    system_name = models.CharField(max_length=100, blank=True)
    cron_schedule = models.CharField(max_length=200, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_run_time = models.DateTimeField(null=True, blank=True)
    last_execution_id = models.CharField(max_length=32, blank=True)
    last_ts_pointer = models.TextField(blank=True)
    last_ts_del_pointer = models.TextField(blank=True)
    source = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="writers",
        help_text="For a writer: the reader whose change logs it applies.",
    )
    direct_writer = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="direct_reader",
        help_text="For a direct job's reader: the writer that runs as soon as it succeeds.",
    )
    created_on = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["job_key"],
                condition=models.Q(is_dynamic=False),
                name="unique_job_key_for_stored_jobs",
            )
        ]
        indexes = [models.Index(fields=["kind", "is_dynamic"])]
        # view_job, change_job and delete_job guard reading, replacing and deleting a flow.
        permissions = [("execute_job", "Can execute a job flow")]

    def __str__(self) -> str:
        return self.job_key

    @property
    def is_direct(self) -> bool:
        return self.direct_writer_id is not None


class ExecutionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


class Execution(models.Model):
    """One run of a reader, a writer or a flow, with the counters DataZen's SyncStatus shows.

    A direct job's reader and writer runs share `guid` (the execution guid clients see).
    `job_guid` and `job_key` are copies, so history outlives a deleted job.
    """

    guid = models.CharField(max_length=64, default=new_guid, db_index=True)
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="executions"
    )
    job_guid = models.CharField(max_length=64, db_index=True)
    job_key = models.CharField(max_length=400)
    listener_type = models.CharField(max_length=10, choices=JobKind.choices)
    is_dynamic = models.BooleanField(default=False)
    status = models.CharField(
        max_length=10, choices=ExecutionStatus.choices, default=ExecutionStatus.PENDING
    )
    options = models.JSONField(default=dict, blank=True, help_text="resync, recreate, testrun…")
    execution_id = models.CharField(max_length=32, blank=True, help_text="DataZen ExecutionId")
    package_file = models.CharField(max_length=1000, blank=True)
    success = models.BooleanField(default=False)
    error_message = models.TextField(blank=True)
    is_consumer_daemon_error = models.BooleanField(default=False)
    record_count = models.BigIntegerField(default=0)
    records_available = models.BigIntegerField(default=0)
    rows_estimate = models.BigIntegerField(
        null=True, blank=True, help_text="The source's own estimate of the rows a read returns"
    )
    delete_count = models.BigIntegerField(default=0)
    records_direct_written = models.BigIntegerField(default=0)
    records_direct_deleted = models.BigIntegerField(default=0)
    elapsed_sql_time = models.FloatField(default=0.0)
    elapsed_map_reduce_time = models.FloatField(default=0.0)
    last_ts_pointer = models.TextField(null=True, blank=True)
    last_del_ts_pointer = models.TextField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid that ran it")
    # The running worker's lease (jobs/leases.py): renewed while it runs; once past, the run
    # is taken over by the next delivery of its task or by a reaper.
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    takeovers = models.PositiveIntegerField(
        default=0, help_text="times a dead worker's run was taken over"
    )
    # When the current worker claimed it: its fence token (jobs/leases.py fence_token).
    claimed_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.CharField(max_length=200, blank=True)
    result = models.JSONField(null=True, blank=True, help_text="Flow outputs, when any.")
    created_on = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_on", "-id"]
        indexes = [models.Index(fields=["job", "listener_type", "-created_on"])]

    def __str__(self) -> str:
        return f"{self.job_key} {self.listener_type} {self.guid}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def run_seconds(self) -> float:
        if self.started_at is None or self.finished_at is None:
            return -1.0
        return (self.finished_at - self.started_at).total_seconds()


class LogLevel(models.IntegerChoices):
    DEBUG = 0, "Debug"
    INFO = 1, "Info"
    WARNING = 2, "Warning"
    ERROR = 3, "Error"


class LogEntry(models.Model):
    """One line of an execution's log."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="log_entries")
    job_guid = models.CharField(max_length=64, db_index=True)
    sequence = models.PositiveIntegerField()
    level = models.PositiveSmallIntegerField(choices=LogLevel.choices, default=LogLevel.INFO)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["execution_id", "sequence"]
        indexes = [models.Index(fields=["job_guid", "-id"])]

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:80]}"


class AgentState(models.Model):
    """The agent's own state (one row): running or stopped, kept across restarts."""

    running = models.BooleanField(default=True)
    license_text = models.TextField(blank=True)
    # Dynamic jobs belong to one boot of the gateway; every process of the boot reads it here.
    boot_id = models.CharField(max_length=32, blank=True, editable=False)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "agent state"

    def __str__(self) -> str:
        return "running" if self.running else "stopped"

    @classmethod
    def load(cls) -> AgentState:
        state, _ = cls.objects.get_or_create(pk=1)
        return state


class EngineCompletion(models.TextChoices):
    KEEP = "keep", "Keep loaded for the next run"
    UNLOAD = "unload", "Unload after the current run"


class FlowEngine(models.Model):
    """A job flow compiled and loaded in an engine host, so every process can list engines.

    On the fleet each Celery worker process that loads a flow writes its row; the embedded
    gateway keeps its engines in memory and lists those.
    """

    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="flow_engines"
    )
    flow_name = models.CharField(max_length=400)
    host = models.CharField(max_length=200, help_text="host:pid of the worker holding it")
    loaded_at = models.DateTimeField(default=timezone.now)
    in_use_by = models.CharField(max_length=200, blank=True)
    run_deadline = models.DateTimeField(null=True, blank=True)
    on_completion = models.CharField(
        max_length=10, choices=EngineCompletion.choices, default=EngineCompletion.KEEP
    )
    unload_requested = models.BooleanField(default=False)
    seen_at = models.DateTimeField(
        default=timezone.now, help_text="when its worker last said it still holds it"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"engine {self.pk} ({self.flow_name})"


class SchedulerLease(models.Model):
    """Leadership among scheduler processes: the one holding an unexpired lease ticks.

    A database row works on the embedded SQLite and on the fleet's PostgreSQL alike; taking it
    is a conditional UPDATE, so two processes never both win (docs/schedules.md).
    """

    name = models.CharField(max_length=50, unique=True)
    holder = models.CharField(max_length=200, help_text="host:pid:thread of the leader")
    expires_at = models.DateTimeField()
    acquired_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "scheduler lease"

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder} until {self.expires_at:%H:%M:%S}"
