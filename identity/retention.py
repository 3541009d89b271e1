"""Retention: each tenant's periods for transcripts, recordings and received emails, applied by a daily purge.

identity owns the workflow (:func:`retention_purge`, run for every tenant by the beat task
``identity.tasks.retention_purge_all``); each app that holds such data registers a :class:`RetentionHandler`
from its ``AppConfig.ready`` (conversations: transcripts and message texts, recording links; channels_app: email
bodies, original messages and attachment files). Rows stay with their text removed, so dashboards keep their
numbers. A patient under a legal hold (``Customer.legal_hold``) is skipped. The access audit is kept for the
tenant's ``retain_audit_days`` and then deleted. Each run that removed anything writes one audit event
(``retention.purge``, actor ``system:retention``) with the row counts — never what was removed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from identity.audit import audit_purge_allowed, audit_record
from identity.models import AuditEvent, Customer, Tenant


@dataclass(frozen=True)
class Cutoffs:
    """Data older than these (UTC) is purged; None = kept (the tenant set no period)."""

    transcripts: datetime | None
    recordings: datetime | None
    raw_emails: datetime | None


@dataclass(frozen=True)
class RetentionHandler:
    """``purge(tenant=, cutoffs=, held=)`` removes one app's expired text and returns row counts per kind.
    ``held`` is a queryset of the customer ids under a legal hold, whose rows must be left alone."""

    name: str
    purge: Callable[..., dict[str, int]]


_HANDLERS: dict[str, RetentionHandler] = {}


def retention_handler_register(handler: RetentionHandler) -> None:
    """Register (or replace, by name) an app's handler."""
    _HANDLERS[handler.name] = handler


def tenant_cutoffs(tenant: Tenant, now: datetime) -> Cutoffs:
    """The tenant's periods (days) as cutoff instants before ``now``."""

    def before(days: int | None) -> datetime | None:
        return now - timedelta(days=days) if days is not None else None

    return Cutoffs(
        transcripts=before(tenant.retain_transcripts_days),
        recordings=before(tenant.retain_recordings_days),
        raw_emails=before(tenant.retain_raw_emails_days),
    )


def in_batches(queryset: QuerySet, *, batch: int | None = None, limit: int | None = None) -> Iterator[list]:
    """Primary keys of ``queryset`` in lists of ``batch`` (``RETENTION_BATCH``), at most ``limit``
    (``RETENTION_MAX_ROWS``) in all, each list read afresh: callers change the rows so they leave the queryset."""
    batch = batch or settings.RETENTION_BATCH
    left = limit if limit is not None else settings.RETENTION_MAX_ROWS
    while left > 0:
        pks = list(queryset.order_by("pk").values_list("pk", flat=True)[: min(batch, left)])
        if not pks:
            return
        yield pks
        left -= len(pks)


def _purge_audit(tenant: Tenant, now: datetime) -> int:
    cutoff = now - timedelta(days=tenant.retain_audit_days)
    with transaction.atomic():
        audit_purge_allowed()
        return AuditEvent.objects.filter(tenant_id=tenant.pk, at__lt=cutoff).delete()[0]


def retention_purge(*, tenant: Tenant, now: datetime | None = None) -> dict[str, int]:
    """Apply ``tenant``'s retention periods; returns ``{"<app>.<kind>": rows}``. Idempotent: purged rows no longer
    match, so a second run (or a task run twice) removes nothing more."""
    now = now or timezone.now()
    cutoffs = tenant_cutoffs(tenant, now)
    held = Customer.objects.filter(tenant=tenant).exclude(legal_hold="").values("pk")
    counts: dict[str, int] = {}
    for handler in _HANDLERS.values():
        for kind, rows in handler.purge(tenant=tenant, cutoffs=cutoffs, held=held).items():
            counts[f"{handler.name}.{kind}"] = rows
    counts["identity.audit_events"] = _purge_audit(tenant, now)
    if any(counts.values()):
        audit_record(
            request=None,
            actor="system:retention",
            action="retention.purge",
            tenant_id=tenant.pk,
            details={
                "rows": counts,
                "days": {
                    "transcripts": tenant.retain_transcripts_days,
                    "recordings": tenant.retain_recordings_days,
                    "raw_emails": tenant.retain_raw_emails_days,
                    "audit": tenant.retain_audit_days,
                },
                "legal_holds_skipped": held.count(),
            },
        )
    return counts
