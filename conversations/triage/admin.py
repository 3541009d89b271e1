"""Admin: triage decisions for clinical review (read-only; staff mark them reviewed). Tenant-scoped."""

from __future__ import annotations

from django.contrib import admin

from conversations.triage.models import TriageDecision
from identity.admin_audit import AuditedReadsAdmin


@admin.register(TriageDecision)
class TriageDecisionAdmin(AuditedReadsAdmin):
    audit_customer_field = "interaction__customer_id"

    """Emergencies, urgent messages and every LLM second opinion; filter "disagreement" to review where the LLM
    and the rules differed (the higher level was acted on)."""

    list_display = (
        "created_at",
        "channel",
        "level",
        "rules_level",
        "llm_level",
        "codes",
        "language",
        "disagreement",
        "reviewed",
    )
    list_filter = ("disagreement", "reviewed", "level", "channel", "language", "engine")
    ordering = ("-created_at",)
    readonly_fields = [f.name for f in TriageDecision._meta.fields if f.name != "reviewed"]
    actions = ["mark_reviewed"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Mark reviewed", permissions=["change"])
    def mark_reviewed(self, request, queryset):
        updated = queryset.filter(reviewed=False).update(reviewed=True)
        self.message_user(request, f"{updated} decision(s) marked reviewed.")
