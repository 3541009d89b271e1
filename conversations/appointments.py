"""Appointments: the tenant's bookable hours (in its time zone), availability, and book / reschedule / cancel.

Reads (``agent_settings_for``, ``availability``, ``upcoming_for_customer``) and writes (``appointment_book``,
``appointment_reschedule``, ``appointment_cancel``) live together because they share one rule: a slot is
bookable when it lies inside one of the tenant's ``AgentSettings.bookable_hours`` windows (local wall-clock
time, so DST is handled by ``zoneinfo``; a window may end at ``"24:00"``, the end of the day, so
``["00:00", "24:00"]`` is the whole day — see :func:`day_windows`, which also gives the clinic's opening hours
on the phone), respects the minimum notice and horizon, and does not overlap another booked appointment of the
same resource. The overlap rule is enforced by PostgreSQL (the
``appointment_no_double_booking`` exclusion constraint); the checks here only produce friendly answers.
Every change sends ``appointment_changed(appointment_id, change)`` on commit; channels send the confirmation.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, tzinfo

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from conversations.memo import memoized
from conversations.models import AgentSettings, Appointment, Conversation
from conversations.signals import appointment_changed
from identity.models import Customer, Tenant

logger = logging.getLogger(__name__)

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DEFAULT_RESOURCE = "main"
END_OF_DAY = "24:00"  # allowed as a window's end only: the next midnight


class BookingError(ValueError):
    """A slot that cannot be booked. ``code``: ``outside_hours`` | ``too_soon`` | ``too_far`` | ``taken`` |
    ``cancelled``; ``alternatives``: nearby bookable starts (aware datetimes, tenant time zone)."""

    def __init__(self, code: str, message: str, alternatives: list[datetime] | None = None):
        super().__init__(message)
        self.code = code
        self.alternatives = alternatives or []


def agent_settings_for(tenant: Tenant) -> AgentSettings:
    """The tenant's :class:`AgentSettings`, or an unsaved instance with the defaults when it has none.
    Read once per agent turn (:mod:`conversations.memo`)."""
    return memoized(
        "agent_settings",
        tenant.pk,
        lambda: AgentSettings.objects.filter(tenant=tenant).first() or AgentSettings(tenant=tenant),
    )


def day_windows(settings: AgentSettings, day: date, tz: tzinfo) -> list[tuple[datetime, datetime]]:
    """The ``bookable_hours`` windows of local ``day`` as aware ``[start, end)`` pairs in ``tz``.

    Each window is ``["HH:MM", "HH:MM"]`` local wall-clock time; an end of ``"24:00"`` is the next midnight, so
    ``["00:00", "24:00"]`` leaves no closed minute. Raises ``ValueError`` for any other malformed time.
    """
    out = []
    for start, end in (settings.bookable_hours or {}).get(WEEKDAYS[day.weekday()], []):
        opens = datetime.combine(day, time.fromisoformat(start), tz)
        closes = (
            datetime.combine(day + timedelta(days=1), time.min, tz)
            if end == END_OF_DAY
            else datetime.combine(day, time.fromisoformat(end), tz)
        )
        out.append((opens, closes))
    return out


def _check(tenant: Tenant, settings: AgentSettings, start: datetime, now: datetime) -> str | None:
    """Why ``start`` (aware) cannot be booked by the hours rules, or None. Overlaps are not checked here."""
    local = start.astimezone(tenant.tzinfo)
    end = local + timedelta(minutes=settings.slot_minutes)
    if not any(a <= local and end <= b for a, b in day_windows(settings, local.date(), tenant.tzinfo)):
        return "outside_hours"
    if start < now + timedelta(minutes=settings.min_notice_minutes):
        return "too_soon"
    if start > now + timedelta(days=settings.horizon_days):
        return "too_far"
    return None


def availability(
    *,
    tenant: Tenant,
    day: date,
    resource: str = DEFAULT_RESOURCE,
    now: datetime | None = None,
    exclude: Appointment | None = None,
) -> list[datetime]:
    """Bookable slot starts on local ``day`` (aware, tenant time zone), in order.

    Slots step by ``slot_minutes`` from each window's start; taken slots (booked, overlapping) are left out;
    ``exclude`` ignores one appointment (the one being rescheduled).
    """
    now = now or timezone.now()
    settings = agent_settings_for(tenant)
    tz = tenant.tzinfo
    step = timedelta(minutes=settings.slot_minutes)
    day_start = datetime.combine(day, time.min, tz)
    booked = Appointment.objects.filter(
        tenant=tenant,
        resource=resource,
        status=Appointment.Status.BOOKED,
        starts_at__lt=day_start + timedelta(days=1, hours=1),
        ends_at__gt=day_start - timedelta(hours=1),
    )
    if exclude is not None:
        booked = booked.exclude(pk=exclude.pk)
    busy = list(booked.values_list("starts_at", "ends_at"))
    slots = []
    for slot, closes in day_windows(settings, day, tz):
        while slot + step <= closes:
            if _check(tenant, settings, slot, now) is None and not any(s < slot + step and slot < e for s, e in busy):
                slots.append(slot)
            slot = slot + step
    return slots


def next_available(
    *,
    tenant: Tenant,
    after: date,
    days: int = 14,
    limit: int = 3,
    now: datetime | None = None,
    exclude: Appointment | None = None,
) -> list[datetime]:
    """Up to ``limit`` bookable starts on the first days from ``after`` (inclusive) that have any."""
    out: list[datetime] = []
    for offset in range(days):
        out += availability(tenant=tenant, day=after + timedelta(days=offset), now=now, exclude=exclude)
        if len(out) >= limit:
            break
    return out[:limit]


def _near(tenant, start, now, exclude=None) -> list[datetime]:
    local_day = start.astimezone(tenant.tzinfo).date()
    same_day = availability(tenant=tenant, day=local_day, now=now, exclude=exclude)
    if same_day:
        return sorted(same_day, key=lambda s: abs((s - start).total_seconds()))[:3]
    return next_available(tenant=tenant, after=local_day + timedelta(days=1), now=now, exclude=exclude)


def slot_problem(
    *, tenant: Tenant, starts_at: datetime, now: datetime | None = None, exclude: Appointment | None = None
) -> BookingError | None:
    """Why ``starts_at`` could not be booked (or an ``exclude``-d appointment moved there) right now, as the
    :class:`BookingError` the write would raise, or None; a read, so a change can be offered before it is made."""
    now = now or timezone.now()
    if reason := _check(tenant, agent_settings_for(tenant), starts_at, now):
        return BookingError(reason, f"slot not bookable: {reason}", _near(tenant, starts_at, now, exclude))
    day = starts_at.astimezone(tenant.tzinfo).date()
    if starts_at not in availability(tenant=tenant, day=day, now=now, exclude=exclude):
        return BookingError("taken", "slot already booked", _near(tenant, starts_at, now, exclude))
    return None


def upcoming_for_customer(*, customer: Customer, now: datetime | None = None) -> QuerySet[Appointment]:
    """The customer's booked appointments that have not started yet, soonest first."""
    return Appointment.objects.filter(
        tenant_id=customer.tenant_id,
        customer=customer,
        status=Appointment.Status.BOOKED,
        starts_at__gte=now or timezone.now(),
    ).order_by("starts_at")


def _announce(appointment: Appointment, change: str) -> None:
    pk, version = appointment.pk, appointment.version
    transaction.on_commit(
        lambda: appointment_changed.send(sender=Appointment, appointment_id=pk, change=change, version=version),
        robust=True,
    )


def appointment_book(
    *,
    tenant: Tenant,
    customer: Customer,
    starts_at: datetime,
    conversation: Conversation | None = None,
    booked_via: str = "",
    resource: str = DEFAULT_RESOURCE,
    now: datetime | None = None,
) -> Appointment:
    """Book ``starts_at`` (aware) for one slot of ``slot_minutes``; returns the appointment.

    Raises :class:`BookingError` (with nearby alternatives) when the slot is outside bookable hours, too soon,
    too far ahead, or taken — the last decided by the database's exclusion constraint, so two concurrent
    bookings of one slot cannot both succeed. Booking a slot this customer already holds returns that
    appointment (a retried turn books once).
    """
    now = now or timezone.now()
    settings = agent_settings_for(tenant)
    if reason := _check(tenant, settings, starts_at, now):
        raise BookingError(reason, f"slot not bookable: {reason}", _near(tenant, starts_at, now))
    ends_at = starts_at + timedelta(minutes=settings.slot_minutes)
    try:
        with transaction.atomic():
            appointment = Appointment.objects.create(
                tenant=tenant,
                customer=customer,
                conversation=conversation,
                resource=resource,
                starts_at=starts_at,
                ends_at=ends_at,
                booked_via=booked_via,
            )
            _announce(appointment, "booked")
    except IntegrityError:
        mine = Appointment.objects.filter(
            tenant=tenant,
            customer=customer,
            resource=resource,
            starts_at=starts_at,
            status=Appointment.Status.BOOKED,
        ).first()
        if mine:
            return mine
        raise BookingError("taken", "slot already booked", _near(tenant, starts_at, now)) from None
    logger.info("appointment %s booked", appointment.pk, extra={"tenant": str(tenant.pk)})
    return appointment


def appointment_reschedule(
    *, appointment: Appointment, starts_at: datetime, now: datetime | None = None
) -> Appointment:
    """Move a booked appointment to ``starts_at`` (same length rules as booking); bumps ``version``.

    Raises :class:`BookingError` like :func:`appointment_book`, or with code ``cancelled`` if it was cancelled.
    Moving it to where it already is changes nothing.
    """
    now = now or timezone.now()
    tenant = appointment.tenant
    settings = agent_settings_for(tenant)
    if reason := _check(tenant, settings, starts_at, now):
        raise BookingError(reason, f"slot not bookable: {reason}", _near(tenant, starts_at, now, appointment))
    try:
        with transaction.atomic():
            row = Appointment.objects.select_for_update().get(pk=appointment.pk, tenant=tenant)
            if row.status != Appointment.Status.BOOKED:
                raise BookingError("cancelled", "appointment was cancelled")
            if row.starts_at == starts_at:
                return row
            row.starts_at = starts_at
            row.ends_at = starts_at + timedelta(minutes=settings.slot_minutes)
            row.version = F("version") + 1
            row.save(update_fields=["starts_at", "ends_at", "version", "updated_at"])
            row.refresh_from_db(fields=["version"])
            _announce(row, "rescheduled")
    except IntegrityError:
        raise BookingError("taken", "slot already booked", _near(tenant, starts_at, now, appointment)) from None
    return row


def appointment_cancel(*, appointment: Appointment) -> bool:
    """Cancel a booked appointment (frees the slot); returns False if it was already cancelled."""
    with transaction.atomic():
        updated = Appointment.objects.filter(pk=appointment.pk, status=Appointment.Status.BOOKED).update(
            status=Appointment.Status.CANCELLED, version=F("version") + 1, updated_at=timezone.now()
        )
        if not updated:
            return False
        appointment.refresh_from_db(fields=["status", "version", "updated_at"])
        _announce(appointment, "cancelled")
    return True
