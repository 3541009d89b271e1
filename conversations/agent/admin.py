"""Admin for the agent's rows: staff notifications (handoffs, callbacks), appointments, callbacks, settings.

Imported by ``conversations.admin``. Every list is tenant-scoped (``TenantScopedAdmin``); free text shown here
(summaries, reasons) is rendered by Django admin, which escapes it.
"""

from __future__ import annotations

from django.contrib import admin, messages

from conversations.agent.services import conversation_start_fresh, staff_notification_mark_handled
from conversations.appointments import appointment_cancel
from conversations.models import (
    AgentSettings,
    Appointment,
    AppointmentReminder,
    CallbackRequest,
    ReminderSettings,
    SatisfactionSurvey,
    StaffNotification,
)
from conversations.reminders.services import appointment_check_in
from identity.admin_audit import AuditedReadsAdmin
from identity.admin_scoping import TenantScopedAdmin


class OpenFilter(admin.SimpleListFilter):
    title, parameter_name = "state", "state"

    def lookups(self, request, model_admin):
        return [("open", "Needs attention"), ("handled", "Handled")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(handled_at__isnull=True)
        if self.value() == "handled":
            return queryset.filter(handled_at__isnull=False)
        return queryset


@admin.register(StaffNotification)
class StaffNotificationAdmin(AuditedReadsAdmin):
    list_display = ["created_at", "kind", "customer", "summary", "interaction_link", "handled_at", "handled_by"]
    list_filter = [OpenFilter, "kind"]
    list_select_related = ["customer", "handled_by"]
    readonly_fields = ["tenant", "kind", "customer", "interaction", "summary", "created_at", "handled_at", "handled_by"]
    actions = ["mark_handled"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Interaction")
    def interaction_link(self, obj):
        from django.utils.html import format_html

        if not obj.interaction_id:
            return "–"
        return format_html('<a href="/admin/conversations/interaction/{}/change/">open</a>', obj.interaction_id)

    @admin.action(description="Mark handled", permissions=["change"])
    def mark_handled(self, request, queryset):
        done = sum(staff_notification_mark_handled(notification=n, user=request.user) for n in queryset)
        self.message_user(request, f"{done} notification(s) marked handled.")


class AppointmentReminderInline(admin.TabularInline):
    """The reminders of an appointment: when, on which channels, and the patient's answer (read-only)."""

    model = AppointmentReminder
    extra = 0
    can_delete = False
    fields = ("kind", "starts_at", "due_at", "status", "skip_reason", "channels", "created_at", "answer", "answered_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Appointment)
class AppointmentAdmin(AuditedReadsAdmin):
    list_display = ["starts_at", "ends_at", "customer", "resource", "status", "booked_via", "version"]
    list_filter = ["status", "resource", "booked_via"]
    date_hierarchy = "starts_at"
    list_select_related = ["customer"]
    search_fields = ["customer__display_name", "customer__identifiers__value"]
    readonly_fields = [
        "tenant",
        "customer",
        "conversation",
        "resource",
        "starts_at",
        "ends_at",
        "status",
        "booked_via",
        "version",
        "confirmed_at",
        "checked_in_at",
        "created_at",
        "updated_at",
    ]
    actions = ["cancel_appointments", "check_in"]
    inlines = [AppointmentReminderInline]

    def has_add_permission(self, request):
        return False  # bookings go through the agent's services (hours, no double booking, confirmation)

    @admin.action(description="Cancel selected appointments (sends a confirmation)", permissions=["change"])
    def cancel_appointments(self, request, queryset):
        done = sum(appointment_cancel(appointment=a) for a in queryset)
        self.message_user(request, f"{done} appointment(s) cancelled.")

    @admin.action(description="Check in (the patient arrived; not a no-show)", permissions=["change"])
    def check_in(self, request, queryset):
        done = sum(appointment_check_in(appointment=a) for a in queryset)
        self.message_user(request, f"{done} appointment(s) checked in.")


@admin.register(CallbackRequest)
class CallbackRequestAdmin(AuditedReadsAdmin):
    list_display = ["created_at", "customer", "phone", "reason", "status"]
    list_filter = ["status"]
    list_select_related = ["customer"]
    readonly_fields = [
        "tenant",
        "customer",
        "conversation",
        "interaction",
        "phone",
        "reason",
        "context",
        "preferred_at",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request):
        return False


@admin.register(AgentSettings)
class AgentSettingsAdmin(TenantScopedAdmin):
    list_display = ["tenant", "slot_minutes", "identity_check", "handoff_number"]


@admin.register(SatisfactionSurvey)
class SatisfactionSurveyAdmin(AuditedReadsAdmin):
    """Surveys asked and their answers (read-only: only the patient answers)."""

    list_display = ["asked_at", "customer", "channel", "status", "score", "answered_at"]
    list_filter = ["status", "channel", "score"]
    list_select_related = ["customer"]
    readonly_fields = [
        "tenant",
        "customer",
        "conversation",
        "interaction",
        "channel",
        "status",
        "score",
        "asked_at",
        "answered_at",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ReminderSettings)
class ReminderSettingsAdmin(TenantScopedAdmin):
    list_display = ["tenant", "enabled", "lead_minutes", "quiet_start", "quiet_end", "record_no_shows"]


@admin.action(description="Start fresh (forget pending requests and remembered details)", permissions=["change"])
def start_fresh_action(modeladmin, request, queryset):
    """ConversationAdmin action: forget the agent's remembered state of the selected conversations (offered only
    to users with the change permission on conversations)."""
    removed = sum(conversation_start_fresh(conversation=c) for c in queryset)
    modeladmin.message_user(request, f"Started fresh: {removed} remembered item(s) cleared.", messages.SUCCESS)
