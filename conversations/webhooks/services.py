"""Writes of outbound webhooks: emit an event, attempt a delivery, retry, dead-letter, replay, rotate secrets.

Public entry point for other apps: :func:`webhook_event_emit` (e.g. escalation calls it with
``event_type="incident.acknowledged"``). Delivery follows the Standard Webhooks spec's delivery behaviour
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md): 2xx = delivered;
anything else (3xx included) is retried on ``settings.WEBHOOK_RETRY_SCHEDULE`` with ±10 % jitter, never sooner
than the answer's ``Retry-After``; 410 Gone disables the endpoint; after the last retry the delivery is
dead-lettered and the tenant's admins are emailed. An attempt is a claim (:mod:`identity.leases`): its lease is
held in ``next_attempt_at`` and ``attempts`` is its fencing token. An attempt whose task died is recorded as
failed when the lease runs out and counts against the schedule (a receiver that hangs the worker is
dead-lettered like any other failure, never retried for ever); if it reports after that, nothing is written.
Queuing a task never fails the caller: a broker outage is logged and the beat sweeper queues the delivery later.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations.webhooks import delivery as http
from conversations.webhooks.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
    new_webhook_secret,
)
from conversations.webhooks.tasks import HARD_TIME_LIMIT
from identity import leases
from identity.models import Tenant, TenantMembership

logger = logging.getLogger(__name__)

JITTER = 0.10
LEASE = leases.task_lease(HARD_TIME_LIMIT)  # held by webhook_deliver (WEBHOOK_TASK_SOFT_TIME_LIMIT + 15 s)
LOST_ERROR = "no result recorded: the attempt's task died (worker lost or time limit)"
SWEEP_MARK = 60  # seconds the sweeper remembers it queued a delivery for a given due time
QUEUE_DIRECT_UNDER = 60  # seconds: shorter retries get their own countdown task; the sweeper catches the rest


def _queue(delivery_ids: list[int], countdown: float = 0) -> None:
    from conversations.webhooks.tasks import webhook_deliver

    for pk in delivery_ids:
        webhook_deliver.apply_async(args=[pk], countdown=max(0, countdown))


def webhook_event_emit(
    *, tenant: Tenant, event_type: str, payload: dict, dedupe_key: str | None = None, at: datetime | None = None
) -> WebhookMessage | None:
    """Record ``event_type`` with ``payload`` (the ``data`` object) for every active endpoint of ``tenant``
    subscribed to it, and queue the first attempts on commit.

    The body sent is ``{"type": event_type, "timestamp": ISO-8601 UTC, "data": payload}``. ``dedupe_key``
    makes emitting idempotent (one message per tenant and key, e.g. ``"incident.acknowledged:<id>"``); without
    it every call is a new message. Returns the message, or None when no endpoint wants the event.
    """
    at = at or timezone.now()
    endpoints = list(WebhookEndpoint.objects.filter(tenant=tenant, is_active=True, events__contains=[event_type]))
    if not endpoints:
        return None
    key = dedupe_key or f"{event_type}:{uuid.uuid4()}"
    body = {"type": event_type, "timestamp": at.isoformat(), "data": payload}
    body = json.loads(json.dumps(body, cls=DjangoJSONEncoder))
    try:
        with transaction.atomic():
            message = WebhookMessage.objects.create(tenant=tenant, event_type=event_type, dedupe_key=key, payload=body)
            created = WebhookDelivery.objects.bulk_create(
                [WebhookDelivery(tenant=tenant, endpoint=e, message=message, next_attempt_at=at) for e in endpoints]
            )
            ids = [d.pk for d in created]
            transaction.on_commit(lambda: _queue(ids), robust=True)
    except IntegrityError:
        return WebhookMessage.objects.get(tenant=tenant, dedupe_key=key)  # emitted before: nothing new
    return message


def retry_delay(*, attempts_made: int, retry_after: float | None, rng: random.Random | None = None) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` failures, or None when the schedule is spent.

    ``schedule[attempts_made - 1]`` ±10 % jitter, raised to ``retry_after`` (capped at the schedule's longest
    step, so a hostile header cannot park a delivery for ever).
    """
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    if attempts_made > len(schedule):
        return None
    base = float(schedule[attempts_made - 1])
    delay = base * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, float(max(schedule))))
    return delay


def _secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    valid = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now:
        valid.append(endpoint.previous_secret)
    return valid


def _claim(delivery_id: int, now: datetime) -> WebhookDelivery | None:
    with transaction.atomic():
        d = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint", "message")
            .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
            .first()
        )
        if d is None:
            return None
        if not d.endpoint.is_active:
            d.status, d.completed_at, d.next_attempt_at = WebhookDelivery.Status.FAILED, now, None
            d.last_error = f"endpoint disabled: {d.endpoint.disabled_reason or 'by staff'}"[:500]
            d.save(update_fields=["status", "completed_at", "next_attempt_at", "last_error"])
            return None
        if (
            d.attempts
            and d.last_attempt_at
            and not WebhookAttempt.objects.filter(delivery=d, attempted_at=d.last_attempt_at).exists()
        ):
            if not _lost_attempt_recorded(d, now):
                return None
        d.attempts += 1
        d.last_attempt_at, d.next_attempt_at = now, now + LEASE
        d.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at"])
        return d


def _lost_attempt_recorded(d: WebhookDelivery, now: datetime) -> bool:
    """Record the claimed-but-never-finished attempt ``d.attempts`` as failed (inside _claim's transaction).

    Returns True if the next attempt may go now; False if the delivery was dead-lettered (schedule spent) or
    the next try is not due yet (``next_attempt_at`` moved to the lost attempt's time + its retry delay).
    """
    WebhookAttempt.objects.create(delivery=d, number=d.attempts, attempted_at=d.last_attempt_at, error=LOST_ERROR)
    d.last_status_code, d.last_error = None, LOST_ERROR
    delay = retry_delay(attempts_made=d.attempts, retry_after=None)
    if delay is None:
        _dead(d, now)
    elif d.last_attempt_at + timedelta(seconds=delay) > now:
        d.next_attempt_at = d.last_attempt_at + timedelta(seconds=delay)
    else:
        return True
    d.save(update_fields=["status", "next_attempt_at", "completed_at", "last_status_code", "last_error"])
    logger.warning("webhook delivery %s: attempt %s never finished; %s", d.pk, d.attempts, d.status)
    return False


def _dead(d: WebhookDelivery, now: datetime) -> None:
    """Mark ``d`` dead-lettered (caller saves) and email the tenant's admins after commit."""
    d.status, d.next_attempt_at, d.completed_at = WebhookDelivery.Status.DEAD, None, now
    pk = d.pk
    transaction.on_commit(lambda: _tell_admins(pk), robust=True)


def webhook_delivery_attempt(*, delivery_id: int, now: datetime | None = None, transport=None) -> str:
    """Attempt one delivery if it is pending and due; returns ``"skipped" | "succeeded" | "retrying" |
    "disabled" | "dead"``. Safe to call twice at once (row lock + lease; a superseded attempt is "skipped")."""
    now = now or timezone.now()
    d = _claim(delivery_id, now)
    if d is None:
        return "skipped"
    body = json.dumps(d.message.payload, separators=(",", ":"), ensure_ascii=False)
    result = http.send(
        url=d.endpoint.url,
        msg_id=d.message.msg_id,
        body=body,
        secrets=_secrets(d.endpoint, now),
        at=now,
        transport=transport,
    )
    return _record(d, result, now)


def _record(d: WebhookDelivery, result: http.AttemptResult, now: datetime) -> str:
    with transaction.atomic():
        # fenced by the attempt number and this claim's lease end (row-locked until commit): a late attempt that
        # was counted as lost when its lease ran out writes nothing, whether the next claim took over (attempts
        # moved on) or only recorded it lost and rescheduled (next_attempt_at moved)
        current = WebhookDelivery.objects.filter(
            pk=d.pk, status=WebhookDelivery.Status.PENDING, next_attempt_at=d.next_attempt_at
        )
        if not leases.record(current, d.attempts, token_field="attempts", last_attempt_at=d.last_attempt_at):
            logger.warning("webhook delivery %s: attempt %s was superseded; its result is dropped", d.pk, d.attempts)
            return "skipped"
        WebhookAttempt.objects.create(
            delivery=d,
            number=d.attempts,
            attempted_at=now,
            status_code=result.status_code,
            error=result.error[:500],
            duration_ms=result.duration_ms,
            response_excerpt=result.body_excerpt[:500],
        )
        d.last_status_code, d.last_error = result.status_code, result.error[:500]
        fields = ["status", "next_attempt_at", "completed_at", "last_status_code", "last_error"]
        if result.ok:
            d.status, d.next_attempt_at, d.completed_at = WebhookDelivery.Status.SUCCEEDED, None, now
            outcome = "succeeded"
        elif result.status_code == 410:
            webhook_endpoint_disable(endpoint=d.endpoint, reason="410 Gone from the endpoint", at=now)
            d.status, d.next_attempt_at, d.completed_at = WebhookDelivery.Status.FAILED, None, now
            outcome = "disabled"
        else:
            delay = retry_delay(attempts_made=d.attempts, retry_after=result.retry_after)
            if delay is None:
                _dead(d, now)
                outcome = "dead"
            else:
                d.next_attempt_at = now + timedelta(seconds=delay)
                if delay < QUEUE_DIRECT_UNDER:
                    transaction.on_commit(lambda: _queue([d.pk], countdown=delay), robust=True)
                outcome = "retrying"
        d.save(update_fields=fields)
    # the endpoint's id, not its URL: a receiver's URL may carry a secret in its query string
    logger.info(
        "webhook %s → endpoint %s attempt %s: %s (%s)",
        d.message.msg_id,
        d.endpoint_id,
        d.attempts,
        outcome,
        result.status_code or result.error,
    )
    return outcome


def _tell_admins(delivery_id: int) -> None:
    """Email the tenant's admins that a delivery was dead-lettered (no payload: it may carry PHI)."""
    d = WebhookDelivery.objects.select_related("endpoint", "message").get(pk=delivery_id)
    emails = list(
        TenantMembership.objects.filter(tenant_id=d.tenant_id, role=TenantMembership.Role.ADMIN, user__is_active=True)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if not emails:
        logger.warning("webhook %s dead-lettered; tenant %s has no admin email", d.message.msg_id, d.tenant_id)
        return
    link = f"{settings.PUBLIC_BASE_URL}/admin/conversations/webhookdelivery/{d.pk}/change/"
    send_mail(
        subject=f"Webhook delivery failed: {d.message.event_type}",
        message=(
            f"We could not deliver {d.message.event_type} ({d.message.msg_id}) to {d.endpoint.url} after "
            f"{d.attempts} attempts (last: {d.last_error or d.last_status_code}).\n"
            f"Fix the endpoint, then replay it from admin: {link}\n"
        ),
        from_email=None,
        recipient_list=emails,
        fail_silently=True,
    )


def webhook_retry_due(*, now: datetime | None = None, limit: int | None = None) -> int:
    """Queue a task for each pending delivery whose time has come (the beat sweeper); returns how many.

    At most ``limit`` (default ``settings.WEBHOOK_SWEEP_BATCH``) per call, oldest due first. A delivery queued
    for a given due time is not queued again for :data:`SWEEP_MARK` seconds (a Redis mark), so a backlog the
    workers have not reached yet is not queued again on every 5-second sweep; a lost task is re-queued after.
    """
    now = now or timezone.now()
    limit = settings.WEBHOOK_SWEEP_BATCH if limit is None else limit
    due = (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", "next_attempt_at")
    )
    ids = []
    for pk, at in due[: limit * 4]:
        if len(ids) >= limit:
            break
        if cache.add(f"webhooks:queued:{pk}:{at.timestamp()}", 1, timeout=SWEEP_MARK):
            ids.append(pk)
    _queue(ids)
    return len(ids)


def webhook_delivery_replay(*, delivery: WebhookDelivery, at: datetime | None = None) -> bool:
    """Send a finished (dead, failed or succeeded) delivery again with the same ``webhook-id``; resets the retry
    schedule. Returns False if it is still pending or its endpoint is disabled."""
    at = at or timezone.now()
    with transaction.atomic():
        updated = (
            WebhookDelivery.objects.filter(pk=delivery.pk, endpoint__is_active=True)
            .exclude(status=WebhookDelivery.Status.PENDING)
            .update(status=WebhookDelivery.Status.PENDING, attempts=0, next_attempt_at=at, completed_at=None)
        )
        if updated:
            transaction.on_commit(lambda: _queue([delivery.pk]), robust=True)
    return bool(updated)


def webhook_endpoint_disable(*, endpoint: WebhookEndpoint, reason: str, at: datetime | None = None) -> None:
    """Stop sending to an endpoint (410 Gone or staff); pending deliveries fail when next claimed."""
    at = at or timezone.now()
    WebhookEndpoint.objects.filter(pk=endpoint.pk, is_active=True).update(
        is_active=False, disabled_at=at, disabled_reason=reason[:200], updated_at=at
    )
    endpoint.refresh_from_db(fields=["is_active", "disabled_at", "disabled_reason"])


def webhook_endpoint_enable(*, endpoint: WebhookEndpoint) -> None:
    """Re-enable an endpoint (after the receiver is fixed); replay its failed deliveries separately."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_active=True, disabled_at=None, disabled_reason="", updated_at=timezone.now()
    )
    endpoint.refresh_from_db(fields=["is_active", "disabled_at", "disabled_reason"])


def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, overlap: timedelta = timedelta(hours=24), at: datetime | None = None
) -> str:
    """Give the endpoint a new ``whsec_`` secret; deliveries are signed with old and new for ``overlap``.

    Returns the new secret (also readable in admin).
    """
    at = at or timezone.now()
    with transaction.atomic():
        row = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        row.previous_secret, row.previous_secret_expires_at = row.secret, at + overlap
        row.secret = new_webhook_secret()
        row.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    endpoint.secret, endpoint.previous_secret = row.secret, row.previous_secret
    endpoint.previous_secret_expires_at = row.previous_secret_expires_at
    return row.secret
