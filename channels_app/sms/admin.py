"""Admin of inbound SMS not yet recorded (:class:`~channels_app.models.InboundSms`): what is in flight and what the
intake quarantined, for staff to read and answer, or to record again once the cause is fixed."""

from __future__ import annotations

from django.contrib import admin, messages

from channels_app.models import InboundSms
from channels_app.sms.intake import sms_intake_retry
from identity.admin_audit import AuditedReadsAdmin


@admin.register(InboundSms)
class InboundSmsAdmin(AuditedReadsAdmin):
    audit_customer_field = "customer_id"  # not known until recorded: audited without a patient
    list_display = ["received_at", "status", "lane", "attempts", "last_error", "sender", "text"]
    list_filter = ["status", "lane"]
    readonly_fields = ["received_at", "status", "lane", "attempts", "last_error", "message_sid", "sender", "text"]
    exclude = ["params", "tenant"]
    actions = ["record_again"]

    @admin.display(description="From")
    def sender(self, obj: InboundSms) -> str:
        return obj.params.get("From", "")

    @admin.display(description="Message")
    def text(self, obj: InboundSms) -> str:
        return obj.params.get("Body", "")

    def has_add_permission(self, request, obj=None):
        return False

    @admin.action(description="Record again (after the cause is fixed)", permissions=["change"])
    def record_again(self, request, queryset):
        count = sms_intake_retry(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} message(s) queued to be recorded again.", messages.SUCCESS)
