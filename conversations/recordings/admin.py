"""Recording deletions in admin: which recordings were asked to go, which the provider confirmed, which are stuck
(and why), so staff can see an erase or retention purge finish. Read-only; tenant-scoped; no patient data (a
recording SID and the reason only)."""

from __future__ import annotations

from django.contrib import admin

from conversations.recordings.models import RecordingDeletion
from identity.admin_scoping import TenantScopedAdmin


class PendingFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("pending", "Pending"), ("stuck", "Pending with an error"), ("deleted", "Deleted")]

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "stuck":
            return queryset.filter(deleted_at__isnull=True).exclude(last_error="")
        if self.value() == "deleted":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


@admin.register(RecordingDeletion)
class RecordingDeletionAdmin(TenantScopedAdmin):
    list_display = [
        "recording_sid",
        "reason",
        "requested_at",
        "deleted_at",
        "attempts",
        "last_attempt_at",
        "last_error",
    ]
    list_filter = [PendingFilter, "reason"]
    search_fields = ["recording_sid"]
    readonly_fields = (
        "recording_sid",
        "reason",
        "requested_at",
        "deleted_at",
        "attempts",
        "last_attempt_at",
        "last_error",
    )
    ordering = ["-requested_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
