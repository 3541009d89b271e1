"""Admin for the access audit, and the mixin that audits admin reads of patient data.

:class:`AuditedReadsAdmin` records one event per change page opened (``admin.view``) and per list page
(``admin.list``, with the filters and the row count). :class:`AuditEventAdmin` lets staff search their
tenant's events by patient and by staff member, and change or delete nothing.
"""

from __future__ import annotations

from django.contrib import admin

from identity.admin_scoping import TenantScopedAdmin, user_tenant_id
from identity.audit import audit_filters, audit_record
from identity.models import AuditEvent


class AuditedReadsAdmin(TenantScopedAdmin):
    """A tenant-scoped admin whose change and list pages write audit events.

    ``audit_customer_field`` is the attribute holding the patient's id on an object (``"pk"`` for Customer).
    """

    audit_customer_field = "customer_id"

    def _audit_customer_id(self, obj):
        if obj is None:
            return None
        if self.audit_customer_field == "pk":
            return obj.pk
        value = obj
        for part in self.audit_customer_field.split("__"):
            value = getattr(value, part, None)
            if value is None:
                return None
        return value

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        audit_record(
            request=request,
            action="admin.view",
            tenant_id=getattr(obj, "tenant_id", None) if obj is not None else user_tenant_id(request.user),
            customer_id=self._audit_customer_id(obj),
            obj=obj,
            object_type=self.model._meta.label_lower,
            object_id=str(object_id)[:64],
            outcome=AuditEvent.Outcome.OK if obj is not None else AuditEvent.Outcome.NOT_FOUND,
        )
        return obj

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None:
            audit_record(
                request=request,
                action="admin.list",
                tenant_id=user_tenant_id(request.user),
                object_type=self.model._meta.label_lower,
                details={"filters": audit_filters(request.GET), "rows": changelist.result_count},
            )
        return response


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdmin):
    """Read-only: no add, change or delete for anyone (a database trigger refuses UPDATE and DELETE too)."""

    list_display = ["at", "actor", "action", "object_type", "object_id", "customer_id", "outcome", "ip"]
    list_filter = ["action", "outcome", "at"]
    search_fields = ["=customer__id", "actor", "=object_id"]
    search_help_text = "A patient's id, a staff member's username (or api-key:<prefix>), or an object id."
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}
