"""Permission: the request acts for a tenant, and an API key carries the scope the view names."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from conversations.api.authentication import request_tenant_id
from conversations.api.models import ApiKey


class TenantScoped(BasePermission):
    """Allow when the request has a tenant and (for API keys) the view's ``required_scope``.

    Views set ``required_scope`` (an :class:`~conversations.api.models.ApiScope` value). Staff sessions with a
    tenant membership have every read scope. Missing credentials → 401; wrong scope / no tenant → 403.
    """

    message = "This credential lacks the scope this endpoint needs, or acts for no tenant."

    def has_permission(self, request, view) -> bool:
        if request_tenant_id(request) is None:
            return False
        scope = getattr(view, "required_scope", None)
        if isinstance(request.auth, ApiKey) and scope is not None:
            return scope in (request.auth.scopes or [])
        return True
