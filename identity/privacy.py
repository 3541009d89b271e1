"""Erase (GDPR Art. 17) and export (Art. 15/20) of one patient, across every app.

identity owns the workflow; each app that holds patient data registers a :class:`PrivacyHandler` (from its
``AppConfig.ready``) that can refuse an erase (an open incident), erase its rows and export them. An erase
removes text and identifiers and keeps aggregate rows (timestamps, channels, scores) pointing at the
anonymised customer, so dashboards' totals do not change. Both are audited, without PII.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import django.dispatch
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from identity.audit import audit_record
from identity.models import AuditEvent, Customer, CustomerIdentifier, IdentityConflict

#: Sent on commit of an erase, with ``tenant_id`` and ``customer_id`` (webhooks, warehouse tombstones).
customer_erased = django.dispatch.Signal()


class ErasureRefused(Exception):
    """The patient may not be erased now; ``str(exc)`` is the reason (no PHI)."""


@dataclass(frozen=True)
class Export:
    """One app's part of an export: JSON-able ``data`` and ``files`` as (name in the zip, bytes)."""

    data: dict[str, Any]
    files: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class PrivacyHandler:
    name: str
    erase: Callable[[list[Customer]], dict[str, int]]
    export: Callable[[Customer], Export]
    refuse: Callable[[Customer], str | None] | None = None


_HANDLERS: dict[str, PrivacyHandler] = {}


def privacy_handler_register(handler: PrivacyHandler) -> None:
    """Register (or replace, by name) an app's handler."""
    _HANDLERS[handler.name] = handler


def _with_tombstones(customer: Customer) -> list[Customer]:
    """The customer and every customer merged into it (their rows moved, their names may remain)."""
    found, frontier = [customer], [customer.pk]
    while frontier:
        more = list(Customer.objects.filter(tenant_id=customer.tenant_id, merged_into_id__in=frontier))
        found += more
        frontier = [c.pk for c in more]
    return found


def erase_refusal(customer: Customer) -> str | None:
    """Why ``customer`` cannot be erased now, or None."""
    if customer.legal_hold:
        return f"legal hold: {customer.legal_hold}"
    for handler in _HANDLERS.values():
        reason = handler.refuse(customer) if handler.refuse else None
        if reason:
            return reason
    return None


def _erase_identity(customers: list[Customer]) -> dict[str, int]:
    ids = [c.pk for c in customers]
    counts = {"identifiers": CustomerIdentifier.objects.filter(customer_id__in=ids).delete()[0]}
    conflicts = IdentityConflict.objects.filter(Q(resolved_customer_id__in=ids) | Q(other_customer_id__in=ids))
    counts["identity_conflicts"] = conflicts.delete()[0]
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Customer), object_id__in=[str(i) for i in ids]
    )
    counts["admin_log_entries"] = entries.update(object_repr="(erased)", change_message="[]")
    counts["customers"] = Customer.objects.filter(pk__in=ids).update(
        display_name="",
        legal_hold="",
        date_of_birth=None,
        visit_reason="",
        erased_at=timezone.now(),
        updated_at=timezone.now(),
    )
    return counts


def customer_erase(*, customer: Customer, request=None, actor: str = "") -> dict[str, int]:
    """Erase everything about ``customer`` (and customers merged into it); returns row counts per kind.

    Raises :class:`ErasureRefused` (and audits the refusal) under a legal hold or an open incident.
    """
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        reason = erase_refusal(customer)
        if not reason:
            customers = _with_tombstones(customer)
            counts: dict[str, int] = {}
            for handler in _HANDLERS.values():
                counts.update({f"{handler.name}.{k}": v for k, v in handler.erase(customers).items()})
            counts.update({f"identity.{k}": v for k, v in _erase_identity(customers).items()})
            tenant_id, customer_id = customer.tenant_id, customer.pk
            transaction.on_commit(
                lambda: customer_erased.send(sender=Customer, tenant_id=tenant_id, customer_id=customer_id)
            )
        audit_record(
            request=request,
            actor=actor,
            action="privacy.erase",
            tenant_id=customer.tenant_id,
            customer_id=customer.pk,
            obj=customer,
            outcome=AuditEvent.Outcome.REFUSED if reason else AuditEvent.Outcome.OK,
            details={"reason": reason} if reason else {"rows": counts},
        )
    if reason:
        raise ErasureRefused(reason)
    return counts


def customer_export(*, customer: Customer, request=None, actor: str = "") -> bytes:
    """A zip of everything held about ``customer``: ``patient.json`` plus attachment files under ``files/``."""
    data: dict[str, Any] = {
        "customer": {
            "id": customer.pk,
            "display_name": customer.display_name,
            "date_of_birth": customer.date_of_birth,
            "visit_reason": customer.visit_reason,
            "preferred_language": customer.preferred_language,
            "created_at": customer.created_at,
            "erased_at": customer.erased_at,
            "memory_opt_out": customer.memory_opt_out,
            "identifiers": list(
                CustomerIdentifier.objects.filter(customer=customer).values(
                    "kind", "value", "verified", "sms_opted_out_at", "created_at"
                )
            ),
        }
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        n_files = 0
        for handler in _HANDLERS.values():
            part = handler.export(customer)
            data[handler.name] = part.data
            for name, content in part.files:
                archive.writestr(f"files/{handler.name}/{name}", content)
                n_files += 1
        archive.writestr("patient.json", json.dumps(data, cls=DjangoJSONEncoder, indent=2))
    audit_record(
        request=request,
        actor=actor,
        action="privacy.export",
        tenant_id=customer.tenant_id,
        customer_id=customer.pk,
        obj=customer,
        details={"files": n_files},
    )
    return buffer.getvalue()
