"""The escalation pipeline's dead-man's switch.

Proof of life: each run of beat's auditor (beat → ``escalation`` queue → worker) records the ``auditor``
heartbeat and queues a canary task on the ``escalation`` queue, which records the ``canary`` heartbeat with
its queue lag. The web process — never Celery, which is what may be dead — checks them
(:func:`pipeline_watch`: its watchdog thread, ``escalation.watchdog``, and every ``GET /healthz/escalation``).
With no heartbeat of either kind for ``ESCALATION_HEARTBEAT_MAX_AGE`` seconds (default 30) an outage opens
(one open row at a time, by constraint) and every tenant's admins with a phone (an active admin membership
whose user is an active responder) get one SMS per outage (``OutageAlert`` unique per outage, tenant and
number; the row is inserted before the send). A fresh heartbeat closes the outage; the next one texts again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from escalation import selectors
from escalation.models import OutageAlert, PipelineHeartbeat, PipelineOutage, Responder
from escalation.services.messages import tenant_number
from identity import leases
from providers import ProviderError, ProviderPermanentError
from providers.sms import get_sms_backend

logger = logging.getLogger(__name__)

#: A claimed admin text whose send failed transiently is tried again after this (on a later check).
ALERT_LEASE = timedelta(seconds=60)


def heartbeat_record(*, source: str, at: datetime | None = None, lag_seconds: float = 0.0) -> None:
    """Upsert the heartbeat of ``source`` (a ``PipelineHeartbeat.Source``): one INSERT … ON CONFLICT."""
    PipelineHeartbeat.objects.bulk_create(
        [PipelineHeartbeat(source=source, at=at or timezone.now(), lag_seconds=max(0.0, lag_seconds))],
        update_conflicts=True,
        unique_fields=["source"],
        update_fields=["at", "lag_seconds"],
    )


def pipeline_canary_queue(*, at: datetime | None = None) -> None:
    """Queue the canary on the ``escalation`` queue (it expires after the heartbeat max age: a canary stuck in a
    backlog that long is dropped, and the missing heartbeat is the alarm)."""
    from escalation.tasks import escalation_canary

    at = at or timezone.now()
    escalation_canary.apply_async((at.isoformat(),), expires=float(settings.ESCALATION_HEARTBEAT_MAX_AGE))


def pipeline_watch(*, now: datetime | None = None) -> selectors.PipelineHealth:
    """Check the heartbeats (web process): open an outage and text the admins once, or close the outage."""
    now = now or timezone.now()
    health = selectors.pipeline_health(now=now)
    if health.ok:
        closed = PipelineOutage.objects.filter(ended_at__isnull=True).update(ended_at=now)
        if closed:
            logger.warning("escalation pipeline heartbeat is back; outage closed")
        return health
    outage = _outage_open(health, now)
    outage_alert_admins(outage=outage, now=now)
    return selectors.pipeline_health(now=now)


def _outage_open(health: selectors.PipelineHealth, now: datetime) -> PipelineOutage:
    ats = [b["at"] for b in health.beats.values() if b]
    last = max(ats) if ats else None
    try:
        with transaction.atomic():
            outage, created = PipelineOutage.objects.get_or_create(
                ended_at__isnull=True, defaults={"started_at": now, "last_heartbeat_at": last}
            )
    except IntegrityError:  # another web process opened it at the same moment (constraint one_open_outage)
        return PipelineOutage.objects.get(ended_at__isnull=True)
    if created:
        logger.error("escalation pipeline: no heartbeat from %s (last %s); outage opened", health.stale, last)
    return outage


def outage_text(*, clinic: str, outage: PipelineOutage) -> str:
    """The admin SMS (no PHI: the clinic's name, a time and the health URL)."""
    return (
        f"{clinic}: ALERT urgent paging is DOWN since {outage.started_at:%H:%M} UTC; on-call pages may not go "
        f"out. Check the servers now: {settings.PUBLIC_BASE_URL}/healthz/escalation"
    )


def outage_alert_admins(*, outage: PipelineOutage, now: datetime | None = None) -> int:
    """Text each tenant's admins about ``outage`` at most once (a claim, :mod:`identity.leases`, by insert; a
    transient failure is re-claimed after :data:`ALERT_LEASE`, a permanent one never). Returns the number of
    texts sent now."""
    now = now or timezone.now()
    recipients = (
        Responder.objects.filter(
            active=True,
            user__is_active=True,
            user__membership__role="admin",
            user__membership__tenant_id=F("tenant_id"),  # the admin of this very tenant
            tenant__escalation_settings__enabled=True,
        )
        .select_related("tenant")
        .order_by("tenant_id", "phone")
    )
    sent = 0
    for responder in recipients:
        tenant = responder.tenant
        try:
            sender = tenant_number(tenant)
        except ValueError:
            logger.error("tenant %s has no number to text its admins from", tenant.slug)
            continue
        alert = _alert_claim(outage=outage, tenant=tenant, to=responder.phone, now=now)
        if alert is None:
            continue
        try:
            message = get_sms_backend().send(
                tenant=tenant,
                from_=sender,
                to=responder.phone,
                body=outage_text(clinic=tenant.short_name, outage=outage),
            )
        except ProviderError as exc:
            kind = "permanent" if isinstance(exc, ProviderPermanentError) else "transient"
            leases.record(
                OutageAlert.objects.filter(pk=alert.pk),
                alert.claimed_at,
                token_field="claimed_at",
                error=f"{kind}: {exc}"[:300],
            )
            logger.warning("outage alert to an admin of %s failed (%s)", tenant.slug, kind, exc_info=True)
            continue
        OutageAlert.objects.filter(pk=alert.pk).update(sent_at=timezone.now(), provider_sid=message.sid, error="")
        sent += 1
    return sent


def _alert_claim(*, outage: PipelineOutage, tenant, to: str, now: datetime) -> OutageAlert | None:
    """Insert the alert row (the claim); if it exists, re-claim it only if unsent, not refused for good and its
    lease expired. None: someone sent it or holds it."""
    try:
        with transaction.atomic():
            return OutageAlert.objects.create(outage=outage, tenant=tenant, to_number=to, claimed_at=now)
    except IntegrityError:
        pass
    unsent = OutageAlert.objects.filter(
        ~Q(error__startswith="permanent"), outage=outage, tenant=tenant, to_number=to, sent_at__isnull=True
    )
    if leases.due_since(unsent, now, ALERT_LEASE).update(claimed_at=now):  # claimed_at is the fencing token
        return OutageAlert.objects.get(outage=outage, tenant=tenant, to_number=to)
    return None
