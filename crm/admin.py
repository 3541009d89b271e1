"""Admin for the CRM connectors: connections (connect, test, backfill, disable) and deliveries (dead letters, replay).

Tokens are never shown. Connecting goes through OAuth (the buttons above the connection list); only a clinic
admin may connect, test, backfill or replay (the "Clinic admin" group holds the permissions; see identity.roles).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from crm.models import CrmConnection, CrmDelivery, CrmProvider
from crm.payload import MAPPABLE_FIELDS
from crm.services import (
    MAX_BACKFILL_DAYS,
    crm_backfill,
    crm_connection_disable,
    crm_connection_test,
    crm_delivery_replay,
)
from identity.admin_scoping import TenantScopedAdmin, user_is_clinic_admin


class ConnectionForm(forms.ModelForm):
    class Meta:
        model = CrmConnection
        fields = ["field_map", "sync_appointments", "appointment_reason"]

    def clean_field_map(self):
        value = self.cleaned_data["field_map"] or {}
        if not isinstance(value, dict):
            raise forms.ValidationError('Give an object like {"lead_score": "Lead_Score__c"}.')
        unknown = sorted(set(value) - set(MAPPABLE_FIELDS))
        if unknown:
            raise forms.ValidationError(
                f"Unknown field(s): {', '.join(unknown)}. Allowed: {', '.join(MAPPABLE_FIELDS)}."
            )
        bad = [k for k, v in value.items() if not isinstance(v, str) or not v.strip() or len(v) > 100]
        if bad:
            raise forms.ValidationError(f"Give a CRM field name (text, at most 100 characters) for: {', '.join(bad)}.")
        return {k: v.strip() for k, v in value.items()}


class BackfillForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=MAX_BACKFILL_DAYS, initial=30, label="Days back")


def _is_clinic_admin(request) -> bool:
    return request.user.is_superuser or user_is_clinic_admin(request.user)


@admin.register(CrmConnection)
class CrmConnectionAdmin(TenantScopedAdmin):
    form = ConnectionForm
    change_list_template = "admin/crm/crmconnection/change_list.html"
    list_display = ["provider", "status", "external_account", "last_error", "token_expires_at", "updated_at"]
    list_filter = ["provider", "status"]
    readonly_fields = [
        "provider",
        "status",
        "external_account",
        "instance_url",
        "token_expires_at",
        "last_error",
        "disabled_at",
        "reconnect",
        "created_at",
        "updated_at",
    ]
    fields = ["field_map", "sync_appointments", "appointment_reason", *readonly_fields]
    actions = ["test_connection", "backfill", "disable"]

    def has_add_permission(self, request):
        return False  # connections are made by the OAuth consent, never typed in

    def changelist_view(self, request, extra_context=None):
        providers = [(p.label, reverse("crm-oauth-start", args=[p.value])) for p in CrmProvider]
        extra = {"crm_connect_links": providers if _is_clinic_admin(request) else []}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    @admin.display(description="Reconnect")
    def reconnect(self, obj):
        url = reverse("crm-oauth-start", args=[obj.provider])
        return format_html('<a class="button" href="{}">Sign in to {} again</a>', url, obj.get_provider_display())

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request, queryset):
        for connection in queryset:
            ok, message = crm_connection_test(connection=connection)
            label = connection.get_provider_display()
            if ok:
                self.message_user(request, f"{label}: connected — {message}.", messages.SUCCESS)
            else:
                self.message_user(request, f"{label}: not working — {message}", messages.ERROR)

    @admin.action(description="Backfill the last N days…", permissions=["change"])
    def backfill(self, request, queryset):
        if not _is_clinic_admin(request):
            self.message_user(request, "Only clinic admins may backfill.", messages.ERROR)
            return None
        connections = list(queryset)
        form = BackfillForm(request.POST if "days" in request.POST else None)
        if form.is_bound and form.is_valid():
            for connection in connections:
                try:
                    n = crm_backfill(connection=connection, days=form.cleaned_data["days"])
                except ValueError as exc:
                    self.message_user(request, f"{connection.get_provider_display()}: {exc}.", messages.ERROR)
                else:
                    self.message_user(
                        request,
                        f"{connection.get_provider_display()}: {n} conversation(s) and appointment(s) queued; "
                        "they are sent in batches over the next minutes.",
                    )
            return None
        return TemplateResponse(
            request,
            "admin/crm/crmconnection/backfill.html",
            {
                **self.admin_site.each_context(request),
                "connections": connections,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "title": "Backfill CRM",
            },
        )

    @admin.action(description="Disable the selected connections", permissions=["change"])
    def disable(self, request, queryset):
        for connection in queryset:
            crm_connection_disable(connection=connection, reason=f"disabled by {request.user}")


@admin.register(CrmDelivery)
class CrmDeliveryAdmin(TenantScopedAdmin):
    list_display = [
        "created_at",
        "subject_link",
        "connection",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
    ]
    list_filter = ["status", "connection__provider"]
    list_select_related = ["connection"]
    readonly_fields = (
        "connection",
        "subject_link",
        "version",
        "status",
        "attempts",
        "next_attempt_at",
        "lease_expires_at",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "completed_at",
        "created_at",
    )
    fields = readonly_fields
    actions = ["replay"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_replay_permission(self, request) -> bool:
        """Replaying sends patient data again: clinic admins (or superusers) only."""
        return _is_clinic_admin(request)

    @admin.display(description="sent")
    def subject_link(self, obj):
        """The interaction (→ activity) or appointment (→ meeting / event) this delivery sends, linked."""
        if obj.appointment_id:
            url = reverse("admin:conversations_appointment_change", args=[obj.appointment_id])
            return format_html('<a href="{}">appointment {}</a>', url, str(obj.appointment_id)[:8])
        url = reverse("admin:conversations_interaction_change", args=[obj.interaction_id])
        return format_html('<a href="{}">interaction {}</a>', url, str(obj.interaction_id)[:8])

    @admin.action(
        description="Replay (retry schedule restarts; no duplicate contact or activity)", permissions=["replay"]
    )
    def replay(self, request, queryset):
        n = sum(crm_delivery_replay(delivery=d) for d in queryset)
        level = messages.SUCCESS if n else messages.WARNING
        self.message_user(request, f"Queued {n} replay(s) (pending ones and disabled connections are skipped).", level)
