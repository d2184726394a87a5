"""The admin web console: connection strings, access keys, jobs, executions and their logs.

What operators change here is what both vendor APIs see: they read the same tables.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from jobs.connections import check_connection
from jobs.models import (
    AccessKey,
    AgentState,
    ConnectionString,
    Execution,
    FlowEngine,
    Job,
    LogEntry,
)


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


@admin.register(ConnectionString)
class ConnectionStringAdmin(admin.ModelAdmin):
    form = ConnectionStringForm
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

    @admin.action(description="Test connection (really connects)")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[ConnectionString]) -> None:
        for connection in queryset:
            try:
                detail = check_connection(
                    connection.system, connection.connection_type, connection.value
                )
            except Exception as exc:  # the target system's own words are what the operator needs
                self.message_user(request, f"{connection.key}: failed: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{connection.key}: OK ({detail})", messages.SUCCESS)


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


class ExecutionInline(admin.TabularInline):
    model = Execution
    fields = ["guid", "listener_type", "status", "record_count", "delete_count", "created_on"]
    readonly_fields = [
        "guid",
        "listener_type",
        "status",
        "record_count",
        "delete_count",
        "created_on",
    ]
    extra = 0
    max_num = 0
    show_change_link = True
    ordering = ["-created_on"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Execution]:
        return super().get_queryset(request).order_by("-created_on")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "job_key",
        "kind",
        "active",
        "status",
        "is_dynamic",
        "system_name",
        "cron_schedule",
        "last_run_time",
    ]
    list_filter = ["kind", "active", "status", "is_dynamic"]
    search_fields = ["job_key", "guid", "connection_key"]
    readonly_fields = [
        "guid",
        "created_on",
        "updated_at",
        "last_run_time",
        "next_run_at",
        "boot_id",
    ]
    raw_id_fields = ["source", "direct_writer"]
    actions = ["start_now", "stop_now"]

    @admin.action(description="Start now")
    def start_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        from jobs.services import JobDisabled, start_job

        for job in queryset:
            try:
                execution = start_job(job, requested_by=request.user.get_username())
            except JobDisabled as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            state = "queued" if execution else "already running"
            self.message_user(request, f"{job.job_key}: {state}", messages.INFO)

    @admin.action(description="Stop")
    def stop_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        from jobs.services import stop_job

        for job in queryset:
            self.message_user(request, f"{job.job_key}: {stop_job(job)} run(s) asked to stop")


class LogEntryInline(admin.TabularInline):
    model = LogEntry
    fields = ["sequence", "level", "created_at", "message"]
    readonly_fields = ["sequence", "level", "created_at", "message"]
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = [
        "guid",
        "job_key",
        "listener_type",
        "status",
        "record_count",
        "delete_count",
        "created_on",
        "finished_at",
        "worker",
    ]
    list_filter = [
        "status",
        "listener_type",
        "is_dynamic",
        ("job", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["guid", "job_key", "job_guid", "execution_id"]
    readonly_fields = [field.name for field in Execution._meta.fields]
    inlines = [LogEntryInline]
    date_hierarchy = "created_on"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


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
class LogEntryAdmin(admin.ModelAdmin):
    """Every run's log lines across jobs, to search for an error message or a job's output."""

    list_display = ["created_at", "level", "execution", "sequence", "message"]
    list_filter = ["level"]
    search_fields = ["message", "job_guid", "execution__guid", "execution__job_key"]
    list_select_related = ["execution"]
    readonly_fields = ["execution", "job_guid", "sequence", "level", "message", "created_at"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(FlowEngine)
class FlowEngineAdmin(admin.ModelAdmin):
    """Loaded flow engines, wherever they live: in this process (embedded) or on the workers."""

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
