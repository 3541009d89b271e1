"""Writes of the CRM connectors: queue an enriched interaction, deliver it, retry, disable, replay, backfill.
Appointments travel through the same outbox as meetings / events (:mod:`crm.meetings`).

Delivery (:func:`crm_delivery_attempt`), per outbox row:

1. claim it under ``select_for_update(skip_locked)``: ``attempts`` +1, ``lease_token`` +1 (the fencing token),
   ``lease_expires_at`` = ``next_attempt_at`` = now + :data:`LEASE`. A worker that dies leaves the row due again
   when the lease runs out; the beat sweep (:func:`crm_redrive`) queues it, and the dead worker's token is stale.
2. contact: the mapped one (``CrmRecordMap``), else the CRM's match by E.164 phone / email, else a new one; the
   map row is written at once, so a retry never creates a second contact.
3. activity: update the mapped one, else create it on the contact and map it (one activity per interaction).
4. record the outcome only if the lease token is still ours (``UPDATE … WHERE lease_token = token``).

Before every remote *create* the lease is checked again, so a stalled worker whose lease was taken over stops.
Errors (see :mod:`crm.clients.base`): 429 / 5xx / network → retried on ``settings.CRM_RETRY_SCHEDULE`` (±10 %
jitter, never sooner than ``Retry-After``, capped at the schedule's longest step), then failed; 401 → the access
token is refreshed once and the attempt goes on; a refused refresh token (``invalid_grant``) disables the
connection and emails the tenant's admins; other 4xx fail the delivery with the CRM's message (admin shows it).
Every delivered interaction writes an ``AuditEvent`` (``crm.export``): patient data left for a third party.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import closing
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import connection as db
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from conversations.models import Appointment, Interaction
from crm.clients import client_for, refresh_tokens
from crm.clients.base import (
    CrmAuthExpired,
    CrmAuthRevoked,
    CrmClient,
    CrmError,
    CrmRateLimited,
    CrmRejected,
    CrmUnavailable,
    TokenSet,
)
from crm.contacts import contact_upsert, mapped_upsert
from crm.meetings import meeting_sync
from crm.models import CrmConnection, CrmDelivery, CrmRecordMap
from crm.outbox import queue_deliveries
from crm.payload import activity_data
from crm.tasks import HARD_TIME_LIMIT
from identity import leases
from identity.audit import audit_record
from identity.leases import task_lease
from identity.models import TenantMembership

logger = logging.getLogger(__name__)

LEASE = task_lease(HARD_TIME_LIMIT)  # crm_deliver's hard time limit + the clock-skew margin (identity.leases)
JITTER = 0.10
QUEUE_DIRECT_UNDER = 60  # seconds: shorter retries get a countdown task; the sweep catches the rest
SWEEP_MARK = 60  # seconds the sweep remembers it queued a delivery for a given due time
REFRESH_EARLY = timedelta(seconds=60)  # refresh an access token this long before it expires


class LeaseLost(Exception):
    """Another worker claimed the delivery after ours (our lease ran out): stop without recording."""


def crm_deliveries_enqueue(*, interaction_id, at: datetime | None = None) -> list[int]:
    """Add an outbox row per active CRM connection of the interaction's tenant (idempotent per enrichment
    version) and queue their tasks on commit. Returns the ids of rows created now ([] when none)."""
    at = at or timezone.now()
    interaction = Interaction.objects.filter(pk=interaction_id).only("pk", "tenant_id", "enriched_at").first()
    if interaction is None or interaction.enriched_at is None:
        return []
    connections = list(
        CrmConnection.objects.filter(tenant_id=interaction.tenant_id, status=CrmConnection.Status.ACTIVE)
    )
    version = interaction.enriched_at.isoformat()  # the enrichment run: a re-score is a new row
    created: list[int] = []
    with transaction.atomic():
        for connection in connections:
            row, new = CrmDelivery.objects.get_or_create(
                connection=connection,
                interaction_id=interaction.pk,
                version=version,
                defaults={"tenant_id": interaction.tenant_id, "next_attempt_at": at},
            )
            if new:
                created.append(row.pk)
        if created:
            transaction.on_commit(lambda: queue_deliveries(created), robust=True)
    return created


def retry_delay(*, attempts_made: int, retry_after: float | None, rng: random.Random | None = None) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` failed attempts, or None when the schedule is spent.

    ``CRM_RETRY_SCHEDULE[attempts_made - 1]`` ±10 %, raised to ``retry_after`` (capped at the longest step).
    """
    schedule = settings.CRM_RETRY_SCHEDULE
    if attempts_made > len(schedule):
        return None
    delay = float(schedule[attempts_made - 1]) * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, float(max(schedule))))
    return delay


def _claim(delivery_id: int, now: datetime) -> tuple[CrmDelivery, int] | None:
    """Claim a due pending delivery: ``(row, fencing token)``, or None (not due, done, locked, disabled)."""
    with transaction.atomic():
        d = (
            CrmDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("connection")
            .filter(pk=delivery_id, status=CrmDelivery.Status.PENDING, next_attempt_at__lte=now)
            .first()
        )
        if d is None:
            return None
        if d.connection.status != CrmConnection.Status.ACTIVE:
            d.status, d.completed_at, d.next_attempt_at = CrmDelivery.Status.FAILED, now, None
            d.last_error = f"connection disabled: {d.connection.last_error or 'by staff'}"[:500]
            d.save(update_fields=["status", "completed_at", "next_attempt_at", "last_error"])
            return None
        if d.attempts > len(settings.CRM_RETRY_SCHEDULE):  # the last allowed attempt's worker died
            d.status, d.completed_at, d.next_attempt_at = CrmDelivery.Status.FAILED, now, None
            d.last_error = "no result recorded: the last attempt's worker died (lease expired)"
            d.save(update_fields=["status", "completed_at", "next_attempt_at", "last_error"])
            return None
        if d.appointment_id is not None and _meeting_busy(d, now):
            return None
        d.attempts += 1
        d.lease_token += 1
        d.last_attempt_at, d.lease_expires_at = now, now + LEASE
        d.next_attempt_at = d.lease_expires_at
        d.save(update_fields=["attempts", "lease_token", "last_attempt_at", "lease_expires_at", "next_attempt_at"])
        return d, d.lease_token


APPOINTMENT_WAIT = 5  # seconds a delivery waits while another delivery of the same appointment runs


def _meeting_busy(d: CrmDelivery, now: datetime) -> bool:
    """Inside the claim's transaction: True (and ``d`` rescheduled :data:`APPOINTMENT_WAIT` s later) when another
    delivery of the same appointment to the same connection holds a live lease. A transaction-scoped advisory
    lock on (connection, appointment) orders concurrent claims, so two workers cannot both see the other idle
    and both create a meeting; no lock outlives the claim (the vendor calls run with none held)."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"crm-meeting:{d.connection_id}:{d.appointment_id}"],
        )
    busy = (
        CrmDelivery.objects.filter(
            connection_id=d.connection_id,
            appointment_id=str(d.appointment_id),
            status=CrmDelivery.Status.PENDING,
            lease_expires_at__gt=now,
        )
        .exclude(pk=d.pk)
        .exists()
    )
    if busy:
        d.next_attempt_at = now + timedelta(seconds=APPOINTMENT_WAIT)
        d.save(update_fields=["next_attempt_at"])
        pk = d.pk
        transaction.on_commit(lambda: queue_deliveries([pk], countdown=APPOINTMENT_WAIT), robust=True)
    return busy


def _check_lease(delivery_id: int, token: int) -> None:
    if not CrmDelivery.objects.filter(
        pk=delivery_id, lease_token=token, status=CrmDelivery.Status.PENDING, lease_expires_at__gt=timezone.now()
    ).exists():
        raise LeaseLost(delivery_id)


def _sync(client: CrmClient, connection: CrmConnection, interaction: Interaction, *, fence) -> None:
    """Upsert the contact, then create or update the interaction's activity (see the module docstring)."""
    contact_id = contact_upsert(client, connection, interaction.customer, fence=fence)
    activity = activity_data(interaction, field_map=connection.field_map)
    mapped_upsert(
        connection,
        CrmRecordMap.Kind.INTERACTION,
        interaction.pk,
        update=lambda remote_type, remote_id: client.update_activity(remote_type, remote_id, activity),
        create=lambda: client.create_activity(activity, contact_id=contact_id),
        fence=fence,
    )


def _store_tokens(
    connection: CrmConnection, tokens: TokenSet, now: datetime, *, refresh_lease_token: str | None = None
) -> bool:
    """Write ``tokens`` to ``connection`` (and its row), bump ``token_version`` and end any refresh lease.

    With ``refresh_lease_token`` it is a compare-and-set: written only while that refresh still holds the lease
    (a reconnect, or a take-over after the lease ran out, wins instead). Returns whether it was written.
    """
    fields: dict = {
        "access_token": tokens.access_token,
        "token_expires_at": now + timedelta(seconds=tokens.expires_in) if tokens.expires_in else None,
    }
    if tokens.refresh_token:
        fields["refresh_token"] = tokens.refresh_token
    if tokens.instance_url:
        fields["instance_url"] = tokens.instance_url
    rows = CrmConnection.objects.filter(pk=connection.pk)
    if refresh_lease_token is not None:
        rows = rows.filter(refresh_lease_token=refresh_lease_token)
    written = rows.update(
        **fields,
        token_version=F("token_version") + 1,
        refresh_lease_until=None,
        refresh_lease_token="",
        updated_at=timezone.now(),
    )
    if written:
        connection.refresh_from_db()
    return bool(written)


def _refresh_lease() -> timedelta:
    """How long a refresh may hold the tokens: the token call's connect (5 s) and read timeouts, doubled, + skew."""
    return leases.request_lease(max(5.0, float(settings.CRM_TIMEOUT_SECONDS)))


REFRESH_POLL = 0.2  # seconds between looks while another worker refreshes


def crm_connection_refresh(
    *, connection: CrmConnection, seen_version: int | None = None, now: datetime | None = None
) -> None:
    """Make sure ``connection`` has an access token newer than the one of ``seen_version`` (default: the
    instance's ``token_version``, i.e. the token its client used and the CRM refused); ``connection`` is
    reloaded with the current tokens.

    No transaction or row lock is held across the vendor's token call (claim → act → record, see
    :mod:`identity.leases`): one ``UPDATE`` claims the refresh lease for that version (compare-and-set on
    ``token_version``, a fresh fencing token); the refresh token is read and sent with no lock held; the answer
    is stored only if the lease is still ours (``UPDATE … WHERE refresh_lease_token = ours``), bumping
    ``token_version``. A concurrent refresher of the same version finds the lease taken and waits (polling,
    at most one lease) until the version moves on, then uses the new token — it never sends the refresh token
    a rotating CRM has just replaced. ``now`` dates the new token's expiry; leases run on the real clock.

    Raises :class:`CrmAuthRevoked` after disabling the connection (only if the refused refresh token is still
    the stored one) when the CRM refuses it; :class:`CrmUnavailable` when another refresh outlived our wait,
    or the token call's own transient errors (the lease is released at once).
    """
    now = now or timezone.now()
    seen = connection.token_version if seen_version is None else seen_version
    lease = _refresh_lease()
    deadline = time.monotonic() + lease.total_seconds()
    mine = CrmConnection.objects.filter(pk=connection.pk)
    while True:
        token = leases.claim(
            mine.filter(status=CrmConnection.Status.ACTIVE, token_version=seen),
            now=timezone.now(),
            lease=lease,
            field="refresh_lease_until",
            token_field="refresh_lease_token",
        )
        if token is not None:
            break
        status, version, reason = mine.values_list("status", "token_version", "last_error").get()
        if version != seen:  # refreshed (or reconnected) by someone else: use theirs
            connection.refresh_from_db()
            return
        if status != CrmConnection.Status.ACTIVE:
            raise CrmAuthRevoked(f"the connection is disabled: {reason or 'by staff'}", status_code=None)
        if time.monotonic() >= deadline:
            raise CrmUnavailable("another worker is still refreshing the access token", status_code=None)
        time.sleep(REFRESH_POLL)
    try:
        tokens = refresh_tokens(CrmConnection.objects.get(pk=connection.pk))  # network I/O: no lock, no transaction
    except CrmAuthRevoked as revoked:
        if crm_connection_disable(
            connection=connection, reason=f"refresh token refused: {revoked}", at=now, refresh_lease_token=token
        ):
            raise
        connection.refresh_from_db()  # reconnected meanwhile: the refused token is no longer ours to judge
        return
    except BaseException:
        leases.release(mine, token, field="refresh_lease_until", token_field="refresh_lease_token")
        raise
    if not _store_tokens(connection, tokens, now, refresh_lease_token=token):
        logger.warning("crm connection %s: refresh lease taken over; this refresh's tokens discarded", connection.pk)
        connection.refresh_from_db()


def crm_connection_disable(
    *, connection: CrmConnection, reason: str, at: datetime | None = None, refresh_lease_token: str | None = None
) -> bool:
    """Disable a connection (revoked consent or staff) and email the tenant's admins once, after commit.

    With ``refresh_lease_token`` only while that refresh still holds the lease. Returns whether it changed.
    """
    at = at or timezone.now()
    rows = CrmConnection.objects.filter(pk=connection.pk, status=CrmConnection.Status.ACTIVE)
    if refresh_lease_token is not None:
        rows = rows.filter(refresh_lease_token=refresh_lease_token)
    changed = rows.update(
        status=CrmConnection.Status.DISABLED,
        disabled_at=at,
        last_error=reason[:500],
        refresh_lease_until=None,
        refresh_lease_token="",
        updated_at=at,
    )
    connection.refresh_from_db(fields=["status", "disabled_at", "last_error"])
    if changed:
        pk = connection.pk
        transaction.on_commit(lambda: _tell_admins_disabled(pk), robust=True)
    return bool(changed)


def _tell_admins_disabled(connection_id: int) -> None:
    """Email the tenant's admins that a CRM connection stopped (no patient data in the mail)."""
    connection = CrmConnection.objects.get(pk=connection_id)
    emails = list(
        TenantMembership.objects.filter(
            tenant_id=connection.tenant_id, role=TenantMembership.Role.ADMIN, user__is_active=True
        )
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if not emails:
        logger.warning("crm connection %s disabled; tenant %s has no admin email", connection.pk, connection.tenant_id)
        return
    link = f"{settings.PUBLIC_BASE_URL}/admin/crm/crmconnection/{connection.pk}/change/"
    send_mail(
        subject=f"{connection.get_provider_display()} connection stopped: reconnect it",
        message=(
            f"{connection.get_provider_display()} refused our access ({connection.last_error}).\n"
            f"Conversations are not being sent to it. Reconnect it in admin, then replay the failed deliveries:\n"
            f"{link}\n"
        ),
        from_email=None,
        recipient_list=emails,
        fail_silently=True,
    )


def _deliver(d: CrmDelivery, token: int, now: datetime) -> None:
    """Run the sync with one token refresh on 401 (raises the client's errors or :class:`LeaseLost`)."""
    connection = d.connection
    appointment = interaction = None
    if d.appointment_id is not None:
        appointment = Appointment.objects.select_related("customer").get(pk=d.appointment_id, tenant_id=d.tenant_id)
        erased = appointment.customer.erased_at is not None
    else:
        interaction = Interaction.objects.select_related("customer").get(
            pk=str(d.interaction_id), tenant_id=d.tenant_id
        )
        erased = interaction.customer.erased_at is not None
    if erased:
        raise CrmRejected("the patient was erased; nothing is sent", status_code=None)
    if connection.token_expires_at and connection.token_expires_at - REFRESH_EARLY <= now:
        crm_connection_refresh(connection=connection, now=now)

    def fence() -> None:
        _check_lease(d.pk, token)

    def sync() -> None:
        with closing(client_for(connection)) as client:
            if appointment is not None:
                meeting_sync(client, connection, appointment, fence=fence)
            elif interaction is not None:
                _sync(client, connection, interaction, fence=fence)

    try:
        sync()
    except CrmAuthExpired:
        crm_connection_refresh(connection=connection, now=now)
        sync()


def crm_delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> str:
    """Attempt one delivery if pending and due; returns ``"skipped" | "succeeded" | "retrying" | "failed" |
    "disabled" | "fenced"``. Safe to run twice at once (row lock, lease, fencing token)."""
    now = now or timezone.now()
    claimed = _claim(delivery_id, now)
    if claimed is None:
        return "skipped"
    d, token = claimed
    error: CrmError | None = None
    try:
        _deliver(d, token, now)
    except LeaseLost:
        logger.warning("crm delivery %s: lease %s taken over; result not recorded", d.pk, token)
        return "fenced"
    except CrmError as exc:
        error = exc
    return _record(d, token, error, now)


def _record(d: CrmDelivery, token: int, error: CrmError | None, now: datetime) -> str:
    """Write the outcome if ``token`` still holds the lease; returns the outcome (``"fenced"`` if not)."""
    fields: dict = {"lease_expires_at": None, "last_status_code": error.status_code if error else None}
    fields["last_error"] = str(error)[:500] if error else ""
    if error is None:
        outcome = "succeeded"
        fields.update(status=CrmDelivery.Status.SUCCEEDED, next_attempt_at=None, completed_at=now)
    elif isinstance(error, CrmAuthRevoked):
        outcome = "disabled"
        fields.update(status=CrmDelivery.Status.FAILED, next_attempt_at=None, completed_at=now)
    elif isinstance(error, CrmRateLimited | CrmUnavailable | CrmAuthExpired):
        retry_after = error.retry_after if isinstance(error, CrmRateLimited) else None
        delay = retry_delay(attempts_made=d.attempts, retry_after=retry_after)
        if delay is None:
            outcome = "failed"
            fields.update(status=CrmDelivery.Status.FAILED, next_attempt_at=None, completed_at=now)
        else:
            outcome = "retrying"
            fields["next_attempt_at"] = now + timedelta(seconds=delay)
    else:
        outcome = "failed"
        fields.update(status=CrmDelivery.Status.FAILED, next_attempt_at=None, completed_at=now)
    with transaction.atomic():
        if not leases.record(CrmDelivery.objects.filter(pk=d.pk, status=CrmDelivery.Status.PENDING), token, **fields):
            logger.warning("crm delivery %s: lease %s taken over; result not recorded", d.pk, token)
            return "fenced"
        if outcome == "succeeded":
            kind, pk = ("appointment", d.appointment_id) if d.appointment_id else ("interaction", d.interaction_id)
            rows = Appointment.objects if d.appointment_id else Interaction.objects
            customer_id = rows.values_list("customer_id", flat=True).get(pk=str(pk))
            audit_record(
                request=None,
                action="crm.export",
                tenant_id=d.tenant_id,
                customer_id=customer_id,
                object_type=f"conversations.{kind}",
                object_id=str(pk),
                details={"provider": d.connection.provider, "delivery": d.pk}
                | ({"visit_reason": True} if d.appointment_id and d.connection.appointment_reason else {}),
                actor="task:crm_deliver",
            )
        if outcome == "retrying" and fields["next_attempt_at"] - now < timedelta(seconds=QUEUE_DIRECT_UNDER):
            countdown = (fields["next_attempt_at"] - now).total_seconds()
            transaction.on_commit(lambda: queue_deliveries([d.pk], countdown=countdown), robust=True)
    logger.info(
        "crm delivery %s (%s) attempt %s: %s %s",
        d.pk,
        d.connection.provider,
        d.attempts,
        outcome,
        fields["last_status_code"] or "",
    )
    return outcome


#: An enriched interaction with no outbox row this long after enrichment lost its signal (the enrichment worker
#: died between its commit and the on-commit receiver); :func:`crm_enqueue_missed` adds the row.
MISSED_AFTER = timedelta(minutes=2)
MISSED_HORIZON = timedelta(hours=6)


def crm_enqueue_missed(*, now: datetime | None = None, limit: int = 200) -> int:
    """Add the outbox rows an enriched interaction should have got (at most ``limit``, oldest first): enriched
    between :data:`MISSED_HORIZON` and :data:`MISSED_AFTER` ago, after its connection was made, and with no
    row of that connection created since it was enriched. Returns how many rows were added; the same beat run's
    :func:`crm_redrive` queues them (they are due at once).

    One read for every active connection (``call_logs_tenant_enriched`` per tenant, ``crm_delivery_once`` for
    the anti-join) and one bulk insert (``ON CONFLICT DO NOTHING``: a row the receiver wrote meanwhile stays).
    """
    now = now or timezone.now()
    sql = f"""
        SELECT c.id, c.tenant_id, i.id, i.enriched_at
        FROM {CrmConnection._meta.db_table} c
        JOIN {Interaction._meta.db_table} i ON i.tenant_id = c.tenant_id
        WHERE c.status = %s
          AND i.enriched_at >= GREATEST(%s, c.created_at) AND i.enriched_at < %s
          AND NOT EXISTS (
            SELECT 1 FROM {CrmDelivery._meta.db_table} d
            WHERE d.connection_id = c.id AND d.interaction_id = i.id AND d.created_at >= i.enriched_at
          )
        ORDER BY i.enriched_at, c.id
        LIMIT %s
    """
    with db.cursor() as cursor:
        cursor.execute(sql, [CrmConnection.Status.ACTIVE, now - MISSED_HORIZON, now - MISSED_AFTER, max(0, limit)])
        missed = cursor.fetchall()
    if not missed:
        return 0
    CrmDelivery.objects.bulk_create(
        [
            CrmDelivery(
                tenant_id=tenant_id,
                connection_id=connection_id,
                interaction_id=interaction_id,
                version=enriched_at.isoformat(),
                next_attempt_at=now,
            )
            for connection_id, tenant_id, interaction_id, enriched_at in missed
        ],
        ignore_conflicts=True,
    )
    logger.warning("crm: %d enriched interaction(s) had lost their outbox rows; added", len(missed))
    return len(missed)


def crm_redrive(*, now: datetime | None = None, limit: int | None = None) -> int:
    """Queue a task for each pending delivery whose time has come (retries, expired leases); returns how many.

    At most ``limit`` (default ``settings.CRM_SWEEP_BATCH``), oldest due first; a delivery queued for a given
    due time is not queued again for :data:`SWEEP_MARK` seconds (a Redis mark), so it is redelivered once.
    """
    now = now or timezone.now()
    limit = settings.CRM_SWEEP_BATCH if limit is None else limit
    due = (
        CrmDelivery.objects.filter(status=CrmDelivery.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", "next_attempt_at")
    )
    ids: list[int] = []
    for pk, at in due[: limit * 4]:
        if len(ids) >= limit:
            break
        if at is not None and cache.add(f"crm:queued:{pk}:{at.timestamp()}", 1, timeout=SWEEP_MARK):
            ids.append(pk)
    queue_deliveries(ids)
    return len(ids)


def crm_delivery_replay(*, delivery: CrmDelivery, at: datetime | None = None) -> bool:
    """Send a failed (or succeeded) delivery again from the start of the retry schedule; the record map keeps it
    from creating a second contact or activity. False if it is pending or its connection is disabled."""
    at = at or timezone.now()
    with transaction.atomic():
        updated = (
            CrmDelivery.objects.filter(pk=delivery.pk, connection__status=CrmConnection.Status.ACTIVE)
            .exclude(status=CrmDelivery.Status.PENDING)
            .update(
                status=CrmDelivery.Status.PENDING,
                attempts=0,
                next_attempt_at=at,
                completed_at=None,
                lease_expires_at=None,
            )
        )
        if updated:
            transaction.on_commit(lambda: queue_deliveries([delivery.pk]), robust=True)
    return bool(updated)


MAX_BACKFILL_DAYS = 365
MAX_BACKFILL_ROWS = 20_000


def crm_backfill(*, connection: CrmConnection, days: int, now: datetime | None = None) -> int:
    """Queue the tenant's interactions enriched in the last ``days`` (1–365) for ``connection``, oldest first, and
    its appointments changed in that window (at their current version: one meeting each; none when the connection's
    ``sync_appointments`` is off), at most
    :data:`MAX_BACKFILL_ROWS` of each; returns how many rows are new. The beat sweep sends them in batches
    (``CRM_SWEEP_BATCH`` per 30 s), so a backfill never floods the CRM's rate limits. Raises ValueError for a
    ``days`` out of range or a disabled connection."""
    if not 1 <= days <= MAX_BACKFILL_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_BACKFILL_DAYS}")
    if connection.status != CrmConnection.Status.ACTIVE:
        raise ValueError("the connection is disabled: reconnect it first")
    now = now or timezone.now()
    rows = (
        Interaction.objects.filter(
            tenant_id=connection.tenant_id,
            enriched_at__gte=now - timedelta(days=days),
            customer__erased_at__isnull=True,
        )
        .order_by("enriched_at")
        .values_list("pk", "enriched_at")[:MAX_BACKFILL_ROWS]
    )
    before = CrmDelivery.objects.filter(connection=connection).count()
    CrmDelivery.objects.bulk_create(
        [
            CrmDelivery(
                tenant_id=connection.tenant_id,
                connection=connection,
                interaction_id=pk,
                version=enriched_at.isoformat(),
                next_attempt_at=now,
            )
            for pk, enriched_at in rows
            if enriched_at is not None
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    appointments = (
        Appointment.objects.filter(
            tenant_id=connection.tenant_id,
            updated_at__gte=now - timedelta(days=days),
            customer__erased_at__isnull=True,
        )
        .order_by("updated_at")
        .values_list("pk", "version")[:MAX_BACKFILL_ROWS]
        if connection.sync_appointments
        else []
    )
    CrmDelivery.objects.bulk_create(
        [
            CrmDelivery(
                tenant_id=connection.tenant_id,
                connection=connection,
                appointment_id=pk,
                version=str(version),
                next_attempt_at=now,
            )
            for pk, version in appointments
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    return CrmDelivery.objects.filter(connection=connection).count() - before


def crm_connection_test(*, connection: CrmConnection) -> tuple[bool, str]:
    """An authenticated read on the CRM (refreshing the token once on 401): ``(ok, message for staff)``.

    Records the error on the connection (``last_error``) or clears it; a refused refresh token disables it.
    """
    try:
        try:
            with closing(client_for(connection)) as client:
                message = client.ping()
        except CrmAuthExpired:
            crm_connection_refresh(connection=connection)
            with closing(client_for(connection)) as client:
                message = client.ping()
    except CrmError as exc:
        CrmConnection.objects.filter(pk=connection.pk).update(last_error=str(exc)[:500], updated_at=timezone.now())
        return False, str(exc)
    CrmConnection.objects.filter(pk=connection.pk).update(last_error="", updated_at=timezone.now())
    return True, message


def crm_connection_connect(*, tenant_id, provider: str, tokens: TokenSet, accounts_url: str = "") -> CrmConnection:
    """Store the tokens of a completed OAuth consent: create or re-activate the tenant's connection to
    ``provider`` (an earlier field map is kept). Returns the connection."""
    now = timezone.now()
    with transaction.atomic():
        connection, _ = CrmConnection.objects.select_for_update().get_or_create(tenant_id=tenant_id, provider=provider)
        connection.status, connection.disabled_at, connection.last_error = CrmConnection.Status.ACTIVE, None, ""
        if accounts_url:
            connection.accounts_url = accounts_url
        if tokens.external_account:
            connection.external_account = tokens.external_account
        connection.save(update_fields=["status", "disabled_at", "last_error", "accounts_url", "external_account"])
        _store_tokens(connection, tokens, now)
    return connection
