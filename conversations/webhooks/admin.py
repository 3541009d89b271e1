"""Admin for outbound webhooks: endpoints (events, secret, rotate, enable/disable) and deliveries (replay)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.utils.html import format_html

from conversations.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEventType
from conversations.webhooks.services import (
    webhook_delivery_replay,
    webhook_endpoint_disable,
    webhook_endpoint_enable,
    webhook_endpoint_rotate_secret,
)
from conversations.webhooks.ssrf import UnsafeTarget, resolve_target
from identity.admin_scoping import TenantScopedAdmin, TenantScopedInline


class EndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=1000, assume_scheme="https")
    events = forms.MultipleChoiceField(choices=WebhookEventType.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ["tenant", "url", "description", "events"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        if not settings.DEBUG:
            try:
                resolve_target(url)
            except UnsafeTarget as exc:
                raise forms.ValidationError(f"This URL cannot be used: {exc}.") from exc
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedAdmin):
    form = EndpointForm
    list_display = ["url", "events", "is_active", "disabled_reason", "created_at"]
    list_filter = ["is_active"]
    readonly_fields = [
        "signing_secret",
        "previous_secret_expires_at",
        "is_active",
        "disabled_at",
        "disabled_reason",
        "created_at",
        "updated_at",
    ]
    actions = ["rotate_secret", "disable", "enable"]

    @admin.display(description="Signing secret (verify with the standardwebhooks library)")
    def signing_secret(self, obj):
        return format_html("<code>{}</code>", obj.secret) if obj.pk else "(generated on save)"

    @admin.action(description="Rotate the signing secret (old one stays valid 24 h)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            webhook_endpoint_rotate_secret(endpoint=endpoint)
        self.message_user(request, f"Rotated {queryset.count()} secret(s); both are signed for 24 hours.")

    @admin.action(description="Disable the selected endpoints", permissions=["change"])
    def disable(self, request, queryset):
        for endpoint in queryset:
            webhook_endpoint_disable(endpoint=endpoint, reason=f"disabled by {request.user}")

    @admin.action(description="Enable the selected endpoints", permissions=["change"])
    def enable(self, request, queryset):
        for endpoint in queryset:
            webhook_endpoint_enable(endpoint=endpoint)


class AttemptInline(TenantScopedInline):
    model = WebhookAttempt
    fields = ["number", "attempted_at", "status_code", "error", "duration_ms", "response_excerpt"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class EventTypeFilter(admin.SimpleListFilter):
    """Event types from the catalogue, not from the table: a filter built on rows would list other tenants'."""

    title, parameter_name = "event type", "event_type"

    def lookups(self, request, model_admin):
        return WebhookEventType.choices

    def queryset(self, request, queryset):
        return queryset.filter(message__event_type=self.value()) if self.value() else queryset


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(TenantScopedAdmin):
    list_display = [
        "created_at",
        "event_type",
        "msg_id",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
    ]
    list_filter = ["status", EventTypeFilter]
    list_select_related = ["message", "endpoint"]
    readonly_fields = [
        "endpoint",
        "msg_id",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "completed_at",
        "payload",
    ]
    exclude = ["message"]
    inlines = [AttemptInline]
    actions = ["replay"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="webhook-id")
    def msg_id(self, obj):
        return obj.message.msg_id

    @admin.display(description="event")
    def event_type(self, obj):
        return obj.message.event_type

    @admin.display(description="payload")
    def payload(self, obj):
        import json

        return format_html("<pre>{}</pre>", json.dumps(obj.message.payload, indent=2)[:20000])

    def has_replay_permission(self, request) -> bool:
        """Replaying sends data again: it needs the model's change permission (the change form itself stays
        read-only for everyone, hence not ``has_change_permission``)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")

    @admin.action(description="Replay (same webhook-id, retry schedule restarts)", permissions=["replay"])
    def replay(self, request, queryset):
        n = sum(webhook_delivery_replay(delivery=d) for d in queryset)
        level = messages.SUCCESS if n else messages.WARNING
        self.message_user(request, f"Queued {n} replay(s) (pending ones and disabled endpoints are skipped).", level)
