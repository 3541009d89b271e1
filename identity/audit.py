"""The access audit: :func:`audit_record` is the ONE writer of :class:`~identity.models.AuditEvent`.

Every read path of patient data calls it (admin change pages, the inbox conversation view, Customer 360 and
timeline reads, API reads and exports) with the request, the tenant, the patient and the object. The actor is
the request's Django user or API key (any principal with an ``api_key`` attribute, e.g.
``conversations.api.authentication.ApiKeyUser``). Filters are stored by name with their values, except
free-text ones (a search may contain a patient's name), which keep only their length.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from django.db import connection
from django.utils import timezone

from identity.models import AuditEvent

FREE_TEXT_FILTERS = frozenset({"q", "search", "text", "name", "phone", "email", "body"})
MAX_FILTER_VALUE = 100


def _actor(request) -> tuple[Any, str, str]:
    """``(user or None, api key prefix, label)`` of the request's principal."""
    user = getattr(request, "user", None) if request is not None else None
    api_key = getattr(user, "api_key", None)
    if api_key is not None:
        return None, api_key.prefix, f"api-key:{api_key.prefix}"
    if user is not None and getattr(user, "is_authenticated", False):
        return user, "", user.get_username()[:160]
    return None, "", "anonymous" if request is not None else "system"


def _ip(request) -> str | None:
    raw = (getattr(request, "META", None) or {}).get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


def audit_filters(params) -> dict[str, Any]:
    """Query parameters as stored: free-text values reduced to their length, others truncated."""
    out: dict[str, Any] = {}
    for key in list(params.keys())[:30]:
        values = params.getlist(key) if hasattr(params, "getlist") else [params[key]]
        if key.lower() in FREE_TEXT_FILTERS:
            out[key] = {"chars": sum(len(str(v)) for v in values)}
        else:
            kept = [str(v)[:MAX_FILTER_VALUE] for v in values[:20]]
            out[key] = kept[0] if len(kept) == 1 else kept
    return out


def audit_record(
    *,
    request,
    action: str,
    tenant_id: uuid.UUID | str | None,
    customer_id: uuid.UUID | str | None = None,
    obj: Any = None,
    object_type: str = "",
    object_id: str = "",
    outcome: str = AuditEvent.Outcome.OK,
    details: dict[str, Any] | None = None,
    actor: str = "",
) -> AuditEvent:
    """Append one audit event (UTC now). ``obj`` (a model instance) fills ``object_type`` / ``object_id``.

    ``request`` may be None for commands and tasks; then ``actor`` names them (e.g. ``"command:erase_customer"``).
    """
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    user, key_prefix, label = _actor(request)
    meta = (getattr(request, "META", None) or {}) if request is not None else {}
    return AuditEvent.objects.create(
        at=timezone.now(),
        tenant_id=tenant_id,
        customer_id=customer_id,
        actor_user=user if user is not None and getattr(user, "pk", None) else None,
        actor_api_key=key_prefix,
        actor=(actor or label)[:160],
        action=action[:40],
        object_type=object_type[:80],
        object_id=str(object_id)[:64],
        outcome=outcome,
        ip=_ip(request),
        user_agent=str(meta.get("HTTP_USER_AGENT", ""))[:300],
        details=details or {},
    )


def audit_purge_allowed() -> None:
    """Let this transaction delete audit events (retention only; the trigger refuses every other DELETE)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL callsphere.audit_purge = 'on'")
