"""Operator console for on-call: responders, teams, schedules (with who is on call now), policies, settings,
and incidents with the timeline of every attempt, who acknowledged and the time to ack; SLA CSV export."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from escalation import selectors
from escalation.api.csv_export import csv_response
from escalation.models import (
    EscalationPolicy,
    EscalationSettings,
    EscalationStep,
    Incident,
    NotificationAttempt,
    Responder,
    Schedule,
    ScheduleMember,
    ScheduleOverride,
    Team,
)
from escalation.services import incident_acknowledge, incident_resolve
from identity.admin_audit import AuditedReadsAdmin
from identity.admin_scoping import TenantScopedAdmin, TenantScopedInline, user_tenant_id


def _scoped(field, request, model):
    """Limit a FK/M2M form field to the request user's tenant (superusers: everything)."""
    if field is not None and not request.user.is_superuser:
        field.queryset = field.queryset.filter(tenant_id=user_tenant_id(request.user))
    return field


class ScopedFKInline(TenantScopedInline):
    """Inline of a model without its own tenant column whose FKs point at tenant-owned rows."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = admin.TabularInline.formfield_for_foreignkey(self, db_field, request, **kwargs)
        if any(f.name == "tenant" for f in db_field.remote_field.model._meta.fields):
            field = _scoped(field, request, db_field.remote_field.model)
        return field


@admin.register(Responder)
class ResponderAdmin(TenantScopedAdmin):
    list_display = ["name", "phone", "timezone", "channels", "quiet_start", "quiet_end", "active"]
    list_filter = ["active"]
    search_fields = ["name", "phone"]


@admin.register(Team)
class TeamAdmin(TenantScopedAdmin):
    list_display = ["name"]
    filter_horizontal = ["members"]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        return _scoped(super().formfield_for_manytomany(db_field, request, **kwargs), request, Responder)


class ScheduleMemberInline(ScopedFKInline):
    model = ScheduleMember
    fields = ["position", "responder"]


class ScheduleOverrideInline(ScopedFKInline):
    model = ScheduleOverride
    fields = ["responder", "role", "starts_at", "ends_at"]


@admin.register(Schedule)
class ScheduleAdmin(TenantScopedAdmin):
    list_display = ["name", "rotation_days", "handoff_time", "on_call_now"]
    inlines = [ScheduleMemberInline, ScheduleOverrideInline]
    readonly_fields = ["on_call_now"]

    @admin.display(description="On call now (primary / backup)")
    def on_call_now(self, obj):
        if not obj.pk:
            return "–"
        now = selectors.oncall_at(schedule=obj, at=timezone.now())
        return f"{now.primary or '–'} / {now.backup or '–'}"


class EscalationStepInline(ScopedFKInline):
    model = EscalationStep
    fields = ["order", "target", "schedule", "responder", "team", "channels", "wait_seconds"]


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(TenantScopedAdmin):
    list_display = ["name", "repeat_count"]
    inlines = [EscalationStepInline]


@admin.register(EscalationSettings)
class EscalationSettingsAdmin(TenantScopedAdmin):
    list_display = ["tenant", "enabled", "urgency_threshold", "escalate_in_business_hours", "default_policy"]


class AttemptInline(TenantScopedInline):
    model = NotificationAttempt
    fields = [
        "step_index",
        "repeat",
        "responder",
        "channel",
        "to_number",
        "status",
        "provider_status",
        "provider_sid",
        "error_code",
        "tries",
        "step_due_at",
        "created_at",
        "sent_at",
        "status_updated_at",
        "acknowledged_at",
    ]
    readonly_fields = fields
    ordering = ["created_at", "id"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class ResolveForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=2000, help_text="Clinic-internal")


def _responder_of(request) -> Responder | None:
    """The staff user's own responder record in their tenant, if any (who resolved it)."""
    tenant_id = user_tenant_id(request.user)
    return Responder.objects.filter(user=request.user, tenant_id=tenant_id).first() if tenant_id else None


class ExportForm(forms.Form):
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))


@admin.register(Incident)
class IncidentAdmin(AuditedReadsAdmin):
    list_display = [
        "short_id",
        "raised_at",
        "status",
        "urgency",
        "reason",
        "acknowledged_by",
        "ack_via",
        "ack_time",
        "sla_breached",
        "resolved_at",
    ]
    list_filter = ["status", "urgency", "ack_via", "sla_breached"]
    date_hierarchy = "raised_at"
    inlines = [AttemptInline]
    readonly_fields = [
        "id",
        "tenant",
        "interaction",
        "customer",
        "urgency",
        "reason",
        "status",
        "raised_at",
        "acknowledged_at",
        "acknowledged_by",
        "ack_via",
        "ack_time",
        "exhausted_at",
        "admins_alerted_at",
        "sla_due_at",
        "sla_breached",
        "resolved_at",
        "resolved_by",
        "resolved_via",
        "resolution_note",
        "position",
        "fence",
        "next_step_at",
        "policy_summary",
        "timeline",
    ]
    exclude = ["policy_snapshot"]
    actions = ["acknowledge_selected", "resolve_selected"]
    change_list_template = "escalation/admin/incident_changelist.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Incident")
    def short_id(self, obj):
        return str(obj.pk)[:8]

    @admin.display(description="Time to ack")
    def ack_time(self, obj):
        return str(obj.time_to_ack).split(".")[0] if obj.time_to_ack else "–"

    @admin.display(description="Policy (frozen at raise)")
    def policy_summary(self, obj):
        snap = obj.policy_snapshot or {}
        return (
            format_html_join(
                "",
                "<div>{}. {} on {} — wait {} s</div>",
                (
                    (i + 1, s["target"], ", ".join(s["channels"]), s["wait_seconds"])
                    for i, s in enumerate(snap.get("steps", []))
                ),
            )
            or "no steps"
        )

    @admin.display(description="Timeline")
    def timeline(self, obj):
        rows = [(obj.raised_at, f"raised (urgency {obj.urgency}, {obj.reason})")]
        for a in obj.attempts.select_related("responder").order_by("created_at", "id"):
            rows.append(
                (
                    a.created_at,
                    f"step {a.step_index + 1}/round {a.repeat + 1}: {a.channel} → {a.responder} "
                    f"{a.status}{' ' + a.provider_status if a.provider_status else ''}"
                    f"{' (' + a.error_code + ')' if a.error_code else ''}",
                )
            )
            if a.sent_at:
                rows.append((a.sent_at, f"{a.channel} → {a.responder} accepted by provider ({a.provider_sid})"))
        if obj.acknowledged_at:
            rows.append((obj.acknowledged_at, f"acknowledged by {obj.acknowledged_by or '–'} via {obj.ack_via}"))
        if obj.exhausted_at:
            rows.append((obj.exhausted_at, "ladder exhausted: unacknowledged, admins alerted"))
        if obj.resolved_at:
            rows.append((obj.resolved_at, f"resolved by {obj.resolved_by or 'staff'} via {obj.resolved_via}"))
        for access in obj.portal_accesses.select_related("responder", "user").order_by("at"):
            who = access.responder or access.user or "–"
            rows.append(
                (access.at, f"portal: {access.get_action_display()} by {who} from {access.ip or '?'} {access.detail}")
            )
        rows.sort(key=lambda r: r[0])
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "",
                "<li><code>{}</code> {}</li>",
                ((f"{at:%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC", text) for at, text in rows),
            ),
        )

    @admin.action(description="Acknowledge the selected incidents", permissions=["change"])
    def acknowledge_selected(self, request, queryset):
        done = sum(incident_acknowledge(incident=i, responder=None, via=Incident.AckVia.ADMIN) for i in queryset)
        self.message_user(request, f"Acknowledged {done} incident(s).", messages.SUCCESS)

    @admin.action(description="Resolve the selected incidents (with a note)", permissions=["change"])
    def resolve_selected(self, request, queryset):
        """An intermediate page asks for the note; confirming resolves each (acknowledging one still paging)."""
        form = ResolveForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            note = form.cleaned_data["note"]
            done = sum(
                incident_resolve(incident=i, note=note, via=Incident.AckVia.ADMIN, responder=_responder_of(request))
                for i in queryset
            )
            self.message_user(request, f"Resolved {done} incident(s).", messages.SUCCESS)
            return None
        return TemplateResponse(
            request,
            "escalation/admin/incident_resolve.html",
            {
                **self.admin_site.each_context(request),
                "title": "Resolve incidents",
                "form": form,
                "incidents": queryset,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            },
        )

    def get_urls(self):
        return [
            path("sla-export/", self.admin_site.admin_view(self.sla_export), name="escalation_sla_export"),
            *super().get_urls(),
        ]

    def sla_export(self, request):
        """A form for a date range; submitting downloads the attempts CSV of the user's tenant.

        Staff need the view permission on incidents and on notification attempts (403 otherwise)."""
        if not (
            self.has_view_permission(request)
            and AttemptInline(self.model, self.admin_site).has_view_permission(request)
        ):
            raise PermissionDenied
        today = timezone.now().date()
        form = ExportForm(request.GET or None, initial={"start": today - timedelta(days=90), "end": today})
        if form.is_valid():
            tenant_id = user_tenant_id(request.user)
            if tenant_id is None and not request.user.is_superuser:
                self.message_user(request, "Your account has no clinic.", messages.ERROR)
                return HttpResponseRedirect(reverse("admin:escalation_incident_changelist"))
            rows = (
                selectors.attempts_for_report(
                    tenant_id=tenant_id, start=form.cleaned_data["start"], end=form.cleaned_data["end"]
                )
                if tenant_id
                else NotificationAttempt.objects.none()
            )
            if tenant_id is None:  # a superuser: every tenant
                rows = (
                    NotificationAttempt.objects.filter(
                        created_at__date__gte=form.cleaned_data["start"], created_at__date__lte=form.cleaned_data["end"]
                    )
                    .select_related("incident", "responder", "incident__acknowledged_by")
                    .order_by("created_at", "id")
                )
            return csv_response(
                rows, filename=f"escalation-attempts-{form.cleaned_data['start']}-{form.cleaned_data['end']}.csv"
            )
        return TemplateResponse(
            request,
            "escalation/admin/sla_export.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "weeks": (
                    selectors.sla_weekly(
                        tenant_id=user_tenant_id(request.user), start=today - timedelta(weeks=12), end=today
                    )
                    if user_tenant_id(request.user)
                    else []
                ),
                "title": "Export escalation attempts (SLA)",
                "opts": self.model._meta,
            },
        )
