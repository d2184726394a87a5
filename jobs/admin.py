"""The admin web console: connection strings, access keys, jobs, executions and their logs.

What operators change here is what both vendor APIs see: they read the same tables, and the
console changes them through the same functions the DataZen API calls (jobs/definitions.py),
so a definition the API refuses is refused here too, with the same message.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from jobs import charts, definitions, progress
from jobs.definitions import DefinitionError
from jobs.models import (
    AccessKey,
    AgentState,
    ConnectionString,
    Execution,
    ExecutionStatus,
    FlowEngine,
    Job,
    JobKind,
    LogEntry,
)
from jobs.services import JobDisabled
from jobs.systems import registry
from jobs.systems.base import Connection
from jobs.templatetags.console import ms, seconds

# The gateway serves no page at "/" (DataZen's URL space starts there): no "View site" link.
admin.site.site_url = None
admin.site.site_title = "Data gateway"
admin.site.index_title = "Jobs, runs and connections"

RECENT_RUNS = 20  # runs listed on a job's page
CHART_RUNS = 60  # runs drawn in a job's history chart
LOG_LINES = 2000  # log lines shown on a finished run's page; the Log entries list has them all
# While it runs, the page shows the log's tail: re-sending 2,000 lines every second would cost
# more than the run's own progress updates (600 kB and 0.6 s a refresh, measured).
LIVE_LOG_LINES = 200
LIVE_REFRESH_MS = 1000  # how often a running run's page fetches its progress


# --- what several pages share ----------------------------------------------------------------


class ConsoleAdmin(admin.ModelAdmin):
    """A model's pages with extra context on the change page and views of one object.

    `object_views` lists the extra views by URL suffix: `<id>/<suffix>/` is served by the
    method `<suffix>_view` and named `<app>_<model>_<suffix>`; the POST-only ones (buttons that
    change something) answer 405 to any other method.
    """

    object_views: dict[str, bool] = {}  # suffix → POST only

    def page_context(self, request: HttpRequest, obj: Any) -> dict[str, Any]:
        """What the change page shows beside the form."""
        return {}

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if obj is not None:
            context.update(self.page_context(request, obj))
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self) -> list[URLPattern]:
        own = []
        for suffix, post_only in self.object_views.items():
            view = getattr(self, f"{suffix}_view")
            own.append(
                path(
                    f"<path:object_id>/{suffix}/",
                    self.admin_site.admin_view(require_POST(view) if post_only else view),
                    name=f"{self.opts.app_label}_{self.opts.model_name}_{suffix}",
                )
            )
        return [*own, *super().get_urls()]

    def object_or_404(
        self, request: HttpRequest, object_id: str, allowed: bool | None = None
    ) -> Any:
        """The object an extra view works on; 404 when there is none, 403 when `allowed` is
        False (None: the user may view it)."""
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} has this id.")
        if not (self.has_view_permission(request, obj) if allowed is None else allowed):
            raise PermissionDenied
        return obj


class RecordAdmin(ConsoleAdmin):
    """What happened (runs, log lines, engines): shown, never added or edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- connection strings ----------------------------------------------------------------------


class ConnectionStringForm(forms.ModelForm):
    # The secret is write-only: the form never renders the stored value back.
    value = forms.CharField(
        label="Connection string",
        widget=forms.PasswordInput(render_value=False, attrs={"size": 80}),
        required=False,
        help_text="Stored encrypted. Leave blank when editing to keep the current value.",
    )

    class Meta:
        model = ConnectionString
        fields = ["key", "system", "connection_type", "display_name", "display_value"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.instance.pk and not cleaned.get("value"):
            self.add_error("value", "A new connection needs its connection string.")
        return cleaned

    def save(self, commit: bool = True) -> ConnectionString:
        connection: ConnectionString = super().save(commit=False)
        if self.cleaned_data.get("value"):
            connection.value = self.cleaned_data["value"]
        if commit:
            connection.save()
        return connection


def report_connection_test(
    model_admin: admin.ModelAdmin, request: HttpRequest, connection: ConnectionString
) -> bool:
    """Really connect (the gateway's own connection code) and show the driver's words."""
    try:
        detail = registry.check(
            Connection(
                connection.key, connection.system, connection.connection_type, connection.value
            )
        )
    except Exception as exc:  # the target system's own message is what the operator needs
        model_admin.message_user(
            request, f"{connection.key}: connection failed: {exc}", messages.ERROR
        )
        return False
    model_admin.message_user(
        request, f"{connection.key}: connection OK ({detail})", messages.SUCCESS
    )
    return True


@admin.register(ConnectionString)
class ConnectionStringAdmin(ConsoleAdmin):
    form = ConnectionStringForm
    change_form_template = "admin/jobs/connectionstring/change_form.html"
    list_display = [
        "key",
        "system",
        "connection_type",
        "display_name",
        "display_value",
        "updated_at",
    ]
    list_filter = ["connection_type", "system"]
    search_fields = ["key", "system", "display_name"]
    actions = ["test_connection"]
    object_views = {"test": True}

    def save_model(
        self, request: HttpRequest, obj: ConnectionString, form: Any, change: bool
    ) -> None:
        # Saved whatever the outcome: a system can be down while its connection is set up.
        super().save_model(request, obj, form, change)
        report_connection_test(self, request, obj)

    def test_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The change page's "Test" button (POST): connect now, come back with the result."""
        connection = self.object_or_404(request, object_id)
        report_connection_test(self, request, connection)
        return HttpResponseRedirect(
            reverse("admin:jobs_connectionstring_change", args=[connection.pk])
        )

    @admin.action(description="Test connection (really connects)")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[ConnectionString]) -> None:
        for connection in queryset:
            report_connection_test(self, request, connection)


# --- access keys -----------------------------------------------------------------------------


class AccessKeyForm(forms.ModelForm):
    class Meta:
        model = AccessKey
        fields = ["name", "scope", "read_only", "can_decrypt", "is_active"]


@admin.register(AccessKey)
class AccessKeyAdmin(admin.ModelAdmin):
    form = AccessKeyForm
    list_display = [
        "name",
        "prefix",
        "scope",
        "read_only",
        "can_decrypt",
        "is_active",
        "last_used_at",
    ]
    list_filter = ["scope", "read_only", "can_decrypt", "is_active"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    search_fields = ["name", "prefix"]

    def save_model(self, request: HttpRequest, obj: AccessKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        flags = {
            field: getattr(obj, field)
            for field in ("scope", "read_only", "can_decrypt", "is_active")
        }
        created, raw = AccessKey.generate(obj.name, **flags)
        obj.pk, obj.key_hash, obj.prefix = created.pk, created.key_hash, created.prefix
        obj._state.adding = False
        self.message_user(
            request,
            f"Access key for '{obj.name}': {raw} — copy it now, it is shown only this once.",
            messages.WARNING,
        )


# --- jobs ------------------------------------------------------------------------------------

# Fields the form shows on their own; the JSON box holds the rest of the vendor object.
OWN_FIELDS = ("Guid", "JobKey", "CronSchedule", "Active")


DEFINITION_EXAMPLE = json.dumps(
    {
        "ConnectionString": "warehouse",
        "SqlRead": "SELECT * FROM films",
        "UpsertColumns": "id",
        "Path": "films",
        "SyncStrategy": "Full",
    },
    indent=2,
)
WRITER_EXAMPLE = json.dumps(
    {"ConnectionString": "reporting", "TargetObject": "films", "UpsertColumns": "id"}, indent=2
)


class _DryRun(Exception):
    """Rolls back a service call made only to validate a form."""


def _json_object(text: str, label: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{label} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from exc
    if not isinstance(value, dict):
        raise ValidationError(f"{label} must be a JSON object ({{…}}).")
    return value


def json_box(rows: int, example: str) -> forms.Textarea:
    """A wide text box for a vendor JSON object, showing an example while empty."""
    attrs = {"rows": rows, "cols": 100, "class": "vLargeTextField", "placeholder": example}
    return forms.Textarea(attrs=attrs)


class JobForm(forms.ModelForm):
    """A DataZen job as POST /job and PUT /job take it, saved by the same service functions.

    Validation runs the API's own service inside a savepoint that is rolled back, so every
    rule it applies (cron, pipeline, triggers, a free JobKey, an existing SourceJobKey…)
    applies here with its message, and none is copied.
    """

    job_type = forms.ChoiceField(
        label="Job type",
        choices=[
            (JobKind.READER, "Job reader (with a writer below: a direct job)"),
            (JobKind.WRITER, "Job writer for an existing reader (SourceJobKey)"),
        ],
        initial=JobKind.READER,
    )
    key = forms.CharField(label="Job key", max_length=definitions.MAX_KEY_LENGTH, required=False)
    schedule = forms.CharField(
        label="Cron schedule",
        required=False,
        help_text="Quartz cron, as the API takes it: 0 0/5 * * * ? runs every five minutes.",
    )
    enabled = forms.BooleanField(label="Active", required=False, initial=True)
    definition_text = forms.CharField(
        label="Definition (JSON)",
        widget=json_box(14, DEFINITION_EXAMPLE),
        help_text=(
            "The rest of the JobReader or JobWriter object, as the DataZen API takes it: "
            "ConnectionString, SqlRead, UpsertColumns, Path, PipelineDef, JsonData…"
        ),
    )
    writer_text = forms.CharField(
        label="Direct writer (JobWriter JSON)",
        widget=json_box(8, WRITER_EXAMPLE),
        required=False,
        help_text="Optional: a JobWriter object makes this reader a direct job.",
    )

    class Meta:
        model = Job
        fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        job = self.instance
        if job.pk:
            # The type of a saved job is fixed, and a writer is added through its reader's PUT.
            for name in ("job_type", "writer_text"):
                self.fields.pop(name, None)
            rest = {k: v for k, v in (job.definition or {}).items() if k not in OWN_FIELDS}
            self.initial.update(
                key=job.job_key,
                schedule=job.cron_schedule,
                enabled=job.active,
                definition_text=json.dumps(rest, indent=2, ensure_ascii=False),
            )

    def clean_schedule(self) -> str:
        schedule = (self.cleaned_data.get("schedule") or "").strip()
        if schedule:
            try:
                definitions.validate_cron(schedule)
            except DefinitionError as exc:
                raise ValidationError(exc.message) from exc
        return schedule

    def clean_definition_text(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data.get("definition_text", ""), "The definition")

    def clean_writer_text(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data.get("writer_text", ""), "The direct writer")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            with transaction.atomic():
                self.apply()
                raise _DryRun
        except _DryRun:
            pass
        except DefinitionError as exc:
            raise ValidationError(exc.message) from exc
        return cleaned

    def body(self) -> dict[str, Any]:
        """The JobCreation body this form stands for."""
        data = self.cleaned_data
        job = self.instance
        main = dict(data["definition_text"])
        main.update(JobKey=data["key"], CronSchedule=data["schedule"], Active=data["enabled"])
        kind = job.kind if job.pk else data["job_type"]
        if job.pk:
            main["Guid"] = job.guid
        if kind == JobKind.WRITER:
            return {"JobWriter": main}
        body: dict[str, Any] = {"JobReader": main}
        if not job.pk and data.get("writer_text"):
            body["JobWriter"] = data["writer_text"]
        return body

    def apply(self) -> Job:
        """Create or update through the API's service; returns the job this page shows."""
        if self.instance.pk:
            saved = definitions.update_job(self.body())
            return next(job for job in saved if job.pk == self.instance.pk)
        return definitions.create_job(self.body())[0]


class ExecutionInline(admin.TabularInline):
    """A job's recent runs, newest first, each linking to its run page."""

    model = Execution
    template = "admin/jobs/job/runs_inline.html"
    fields = ["guid"]
    readonly_fields = ["guid"]
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = "Recent runs"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Execution]:
        # Only the newest ones: a job that ran every minute for a year has 500,000 runs.
        match = request.resolver_match
        job_id = match.kwargs.get("object_id") if match is not None else None
        if job_id is None:
            return super().get_queryset(request).none()
        newest = Execution.objects.filter(job_id=job_id).order_by("-created_on", "-id")
        ids = list(newest.values_list("pk", flat=True)[:RECENT_RUNS])
        return super().get_queryset(request).filter(pk__in=ids).order_by("-created_on", "-id")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(ConsoleAdmin):
    form = JobForm
    change_form_template = "admin/jobs/job/change_form.html"
    inlines = [ExecutionInline]
    list_display = [
        "job_key",
        "kind",
        "active",
        "status",
        "is_dynamic",
        "system_name",
        "cron_schedule",
        "last_run",
    ]
    list_filter = ["kind", "active", "status", "is_dynamic"]
    search_fields = ["job_key", "guid", "connection_key"]
    state_fields = [
        "kind",
        "guid",
        "status",
        "source",
        "direct_writer",
        "last_run_at",
        "next_run",
        "created",
        "updated",
    ]
    actions = ["start_now", "stop_now"]
    object_views = {"start": True, "stop": True}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        # The newest run's id, status and start, in the list's one query (no query per row).
        newest = Execution.objects.filter(job=OuterRef("pk")).order_by("-created_on", "-id")
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_run_id=Subquery(newest.values("id")[:1]),
                last_run_status=Subquery(newest.values("status")[:1]),
                last_run_created=Subquery(newest.values("created_on")[:1]),
            )
        )

    # Times on the job page read like the run pages': to the millisecond, one format.
    @admin.display(description="Last run time")
    def last_run_at(self, obj: Job) -> str:
        return ms(obj.last_run_time)

    @admin.display(description="Next run at")
    def next_run(self, obj: Job) -> str:
        return ms(obj.next_run_at)

    @admin.display(description="Created on")
    def created(self, obj: Job) -> str:
        return ms(obj.created_on)

    @admin.display(description="Updated at")
    def updated(self, obj: Job) -> str:
        return ms(obj.updated_at)

    @admin.display(description="Last run", ordering="last_run_created")
    def last_run(self, obj: Job) -> str:
        run_id = getattr(obj, "last_run_id", None)
        if run_id is None:
            return "—"
        status = getattr(obj, "last_run_status", "")
        return format_html(
            '<a href="{}"><span class="run-status status-{}">{}</span></a> {}',
            reverse("admin:jobs_execution_change", args=[run_id]),
            status,
            ExecutionStatus(status).label if status in ExecutionStatus.values else status,
            ms(getattr(obj, "last_run_created", None)),
        )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            fields = ["job_type", "key", "schedule", "enabled", "definition_text", "writer_text"]
            return [(None, {"fields": fields})]
        if not self.has_change_permission(request, obj):
            # Dynamic jobs and job flows are changed through their API only: shown as stored.
            shown = ["job_key", "is_dynamic", "active", "cron_schedule", "definition", "content"]
            return [(None, {"fields": shown}), ("State", {"fields": self.state_fields})]
        return [
            (None, {"fields": ["key", "schedule", "enabled", "definition_text"]}),
            ("State", {"fields": self.state_fields}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.state_fields if obj is not None else []

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return [ExecutionInline] if obj is not None else []

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and (obj.is_dynamic or obj.kind == JobKind.FLOW):
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Job, form: Any, change: bool) -> None:
        saved = form.apply()
        obj.pk = saved.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        if obj.is_dynamic or obj.kind == JobKind.FLOW:
            super().delete_model(request, obj)
            return
        # As DELETE /job: a direct job's writer goes with its reader.
        definitions.delete_job(obj.guid)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            if Job.objects.filter(pk=job.pk).exists():  # a writer may have gone with its reader
                self.delete_model(request, job)

    def page_context(self, request: HttpRequest, job: Job) -> dict[str, Any]:
        runs = [progress.figures(run) for run in progress.recent_runs(job, CHART_RUNS)]
        return {
            "history_chart": charts.history_svg(runs) if runs else None,
            "runs_url": reverse("admin:jobs_execution_changelist") + f"?job__id__exact={job.pk}",
            "can_start": job.kind != JobKind.FLOW and not job.is_dynamic,
            "can_stop": job.kind != JobKind.FLOW,
        }

    def _posted_job(self, request: HttpRequest, object_id: str) -> Job:
        # The buttons change the job's runs: the right to change jobs, whatever this job is.
        return self.object_or_404(
            request, object_id, allowed=super().has_change_permission(request)
        )

    def start_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The job page's "Start now" (POST): as POST /job/start; then the run's own page."""
        job = self._posted_job(request, object_id)
        execution = self._start(request, job)
        if execution is not None:
            return HttpResponseRedirect(reverse("admin:jobs_execution_change", args=[execution.pk]))
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))

    def stop_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The job page's "Stop" (POST): as POST /job/stop."""
        job = self._posted_job(request, object_id)
        self._stop(request, job)
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))

    def _start(self, request: HttpRequest, job: Job) -> Execution | None:
        if job.kind == JobKind.FLOW:
            self.message_user(
                request,
                f"{job.job_key}: job flows run when a client executes them (DataFlux API).",
                messages.ERROR,
            )
            return None
        try:
            execution = definitions.start(
                job.guid, requested_by=f"console:{request.user.get_username()}"
            )
        except (DefinitionError, JobDisabled) as exc:
            self.message_user(request, f"{job.job_key}: {exc}", messages.ERROR)
            return None
        if execution is None:
            self.message_user(request, f"{job.job_key}: already running.", messages.WARNING)
            return None
        started = execution.job_key
        via = f" (through its reader {started})" if started != job.job_key else ""
        self.message_user(request, f"{job.job_key}: started{via}.", messages.SUCCESS)
        return execution

    def _stop(self, request: HttpRequest, job: Job) -> None:
        try:
            asked = definitions.stop(job.guid)
        except DefinitionError as exc:
            self.message_user(request, f"{job.job_key}: {exc}", messages.ERROR)
            return
        self.message_user(request, f"{job.job_key}: {asked} run(s) asked to stop.", messages.INFO)

    @admin.action(description="Start now")
    def start_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            self._start(request, job)

    @admin.action(description="Stop")
    def stop_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            self._stop(request, job)


# --- executions and their logs ---------------------------------------------------------------


def live_context(execution: Execution) -> dict[str, Any]:
    """What the run page's live part shows: progress, the log, the runs sharing its guid."""
    limit = LOG_LINES if execution.is_finished else LIVE_LOG_LINES
    entries = LogEntry.objects.filter(execution=execution).order_by("-sequence")[:limit]
    log = list(reversed(entries))
    total = LogEntry.objects.filter(execution=execution).count() if len(log) == limit else 0
    siblings = Execution.objects.filter(guid=execution.guid).exclude(pk=execution.pk)
    return {
        "execution": execution,
        "progress": progress.progress(execution),
        "log": log,
        "log_hidden": max(0, total - len(log)),
        "siblings": list(
            siblings.only(
                "pk", "listener_type", "job_key", "status", "record_count", "delete_count"
            )
        ),
        "live_url": reverse("admin:jobs_execution_live", args=[execution.pk]),
        "live_every": LIVE_REFRESH_MS,
    }


@admin.register(Execution)
class ExecutionAdmin(RecordAdmin):
    change_form_template = "admin/jobs/execution/change_form.html"
    list_display = [
        "guid",
        "job_key",
        "listener_type",
        "status",
        "record_count",
        "delete_count",
        "created_on",
        "duration",
        "worker",
    ]
    list_filter = [
        "status",
        "listener_type",
        "is_dynamic",
        ("job", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["guid", "job_key", "job_guid", "execution_id"]
    # What changes while a run works (times, counters, worker) is in the live part above
    # these (execution/live.html), so the page never shows a stale figure beside a fresh one.
    fieldsets = [
        (
            "Run",
            {
                "fields": [
                    "job",
                    "job_key",
                    "listener_type",
                    "guid",
                    "requested_by",
                    "created_at_ms",
                ]
            },
        ),
        (
            "Details",
            {
                "classes": ["collapse"],
                "fields": [
                    "job_guid",
                    "is_dynamic",
                    "options",
                    "package_file",
                    "last_ts_pointer",
                    "last_del_ts_pointer",
                    "cancel_requested",
                    "is_consumer_daemon_error",
                    "result",
                ],
            },
        ),
    ]
    readonly_fields = [*(field.name for field in Execution._meta.fields), "created_at_ms"]
    date_hierarchy = "created_on"

    @admin.display(description="Created")
    def created_at_ms(self, obj: Execution) -> str:
        return ms(obj.created_on)

    @admin.display(description="Duration")
    def duration(self, obj: Execution) -> str:
        return seconds(progress.run_seconds(obj))

    object_views = {"live": False}

    def page_context(self, request: HttpRequest, execution: Execution) -> dict[str, Any]:
        return live_context(execution)

    def live_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The run page's live part alone, fetched every second while the run is not finished."""
        execution = self.object_or_404(request, object_id)
        return TemplateResponse(request, "admin/jobs/execution/live.html", live_context(execution))


@admin.register(AgentState)
class AgentStateAdmin(admin.ModelAdmin):
    list_display = ["__str__", "running", "changed_at"]
    fields = ["running", "license_text", "changed_at"]
    readonly_fields = ["changed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not AgentState.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LogEntry)
class LogEntryAdmin(RecordAdmin):
    """Every run's log lines across jobs, to search for an error message or a job's output."""

    list_display = ["time", "level", "run", "sequence", "message"]
    list_filter = ["level"]
    search_fields = ["message", "job_guid", "execution__guid", "execution__job_key"]
    list_select_related = ["execution"]
    readonly_fields = ["execution", "job_guid", "sequence", "level", "message", "created_at"]
    date_hierarchy = "created_at"

    @admin.display(description="Time", ordering="created_at")
    def time(self, obj: LogEntry) -> str:
        return ms(obj.created_at)

    @admin.display(description="Run", ordering="execution")
    def run(self, obj: LogEntry) -> str:
        url = reverse("admin:jobs_execution_change", args=[obj.execution_id])
        return format_html('<a href="{}">{}</a>', url, obj.execution)


@admin.register(FlowEngine)
class FlowEngineAdmin(RecordAdmin):
    """Loaded flow engines, wherever they live: in this process (embedded) or on the workers."""

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        # The flow compiler and its reference data load when this page is first shown, not
        # when the admin loads (every process does).
        from jobs.flows.runtime import engines

        if request.method == "POST" and "unload" in request.POST:
            if not self.has_delete_permission(request):
                raise PermissionDenied
            engine_id = int(request.POST["unload"])
            unloaded = engines.unload_engine(engine_id)
            self.message_user(
                request,
                f"Engine {engine_id} {'unloaded' if unloaded else 'was already gone'}.",
                messages.SUCCESS if unloaded else messages.WARNING,
            )
            return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "title": "Flow engines",
            "engines": engines.list_engines(),
            "where": "this gateway process" if engines.is_embedded() else "the Celery workers",
        }
        return TemplateResponse(request, "admin/jobs/flowengine/engines.html", context)
