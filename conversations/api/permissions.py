"""Permission: the request acts for a tenant, and an API key carries the scope the view names."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from conversations.api.authentication import request_tenant_id
from conversations.api.models import ApiKey, ApiScope
from identity.roles import user_reads_transcripts

#: What a staff session of a role that must not read conversations may reach in the API.
SCHEDULING_SESSION_SCOPES = frozenset({ApiScope.APPOINTMENTS_READ})


class TenantScoped(BasePermission):
    """Allow when the request has a tenant and (for API keys) the view's ``required_scope``.

    Views set ``required_scope`` (an :class:`~conversations.api.models.ApiScope` value). Staff sessions with a
    tenant membership have every read scope, except roles that must not read conversations (``identity.roles``), which have
    only ``SCHEDULING_SESSION_SCOPES``. Missing credentials → 401; wrong scope / no tenant → 403.
    """

    message = "This credential lacks the scope this endpoint needs, or acts for no tenant."

    def has_permission(self, request, view) -> bool:
        if request_tenant_id(request) is None:
            return False
        scope = getattr(view, "required_scope", None)
        if isinstance(request.auth, ApiKey) and scope is not None:
            return scope in (request.auth.scopes or [])
        if not user_reads_transcripts(request.user):  # e.g. "Clinic scheduling": the calendar only
            return scope in SCHEDULING_SESSION_SCOPES
        return True
