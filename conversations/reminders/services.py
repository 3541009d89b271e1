"""Reminders: which are due, recording one (once, by constraint), the patient's answer, and the no-show sweep.

A reminder of lead ``L`` minutes is due at ``starts_at - L`` for a booked appointment that was booked (or last
moved) before that moment; it is sent at most once per appointment time (``reminder_once_per_kind``). When
several leads are due at once (beat was down, or the appointment was booked between two of them) only the
nearest is sent and the others are recorded as skipped. In the tenant's quiet hours nothing is sent; it waits
for the end of them, or is skipped if the appointment starts first.

The patient's answer is understood in the conversation the reminder went to: the reminder is remembered in its
session state (:data:`REMINDER`, see :func:`reminder_remember`) and :func:`reminder_answer_kind` reads replies the
way people write them ("yes I'll be there", "👍", "C", "can we move it to thursday?", "cancela por favor").
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from conversations import services as conv_services
from conversations.models import Appointment, Conversation
from conversations.reminders.models import AppointmentReminder, ReminderSettings
from conversations.signals import appointment_changed
from identity.models import Tenant

logger = logging.getLogger(__name__)

#: Session-state key of the reminder waiting for an answer in a conversation: ``{"reminder_id", "appointment_id"}``.
REMINDER = "reminder"
#: Most appointments looked at per sweep (the rest wait for the next run, a minute later).
SWEEP_BATCH = 500
#: No-shows are looked for among appointments that started at most this long ago.
NO_SHOW_LOOKBACK = timedelta(days=3)


def reminder_settings_for(tenant: Tenant) -> ReminderSettings:
    """The tenant's :class:`ReminderSettings`, or an unsaved instance with the defaults when it has none."""
    return ReminderSettings.objects.filter(tenant=tenant).first() or ReminderSettings(tenant=tenant)


def kind_for(lead_minutes: int) -> str:
    """``lead-1440`` for a 24-hour reminder."""
    return f"lead-{int(lead_minutes)}"


@dataclass(frozen=True)
class Due:
    """A reminder to send now: ``appointment`` (tenant and customer loaded), ``kind``, ``due_at``, its tenant's
    ``settings`` and the longer leads it supersedes (recorded as skipped when it is sent)."""

    appointment: Appointment
    kind: str
    due_at: datetime
    settings: ReminderSettings
    superseded: tuple[tuple[str, datetime], ...] = ()


def _quiet_until(settings: ReminderSettings, tenant: Tenant, now: datetime) -> datetime | None:
    """The end of the quiet window ``now`` is in (aware), or None when ``now`` is not in quiet hours."""
    local = now.astimezone(tenant.tzinfo)
    if not settings.in_quiet_hours(local.time().replace(tzinfo=None)):
        return None
    end = datetime.combine(local.date(), settings.quiet_end, tenant.tzinfo)
    return end if end > local else end + timedelta(days=1)


def _pages(qs, *, batch: int):
    """The rows of ``qs`` by ``(starts_at, pk)``, ``batch`` at a time (keyset pagination: rows skipped by the
    caller never hide later ones, as a plain ``[:batch]`` would on a busy day)."""
    after = None
    while True:
        page = qs
        if after is not None:
            page = qs.filter(Q(starts_at__gt=after[0]) | Q(starts_at=after[0], pk__gt=after[1]))
        rows = list(page.order_by("starts_at", "pk")[:batch])
        if rows:
            yield rows
        if len(rows) < batch:
            return
        after = (rows[-1].starts_at, rows[-1].pk)


def reminders_due(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> tuple[list[Due], int]:
    """Reminders to send at ``now`` (aware; default now), across tenants, soonest appointment first; and how many
    reminders were recorded as skipped meanwhile (quiet hours lasting past the start).

    Looks at every booked appointment of a tenant with reminders on that starts within the longest lead any tenant
    uses, ``limit`` rows per query.
    """
    now = now or timezone.now()
    longest = max(
        [max(s.lead_minutes or [0]) for s in ReminderSettings.objects.filter(enabled=True)]
        + [max(ReminderSettings().lead_minutes)]
    )
    candidates = (
        Appointment.objects.filter(
            status=Appointment.Status.BOOKED, starts_at__gt=now, starts_at__lte=now + timedelta(minutes=longest)
        )
        .exclude(tenant__reminder_settings__enabled=False)
        .select_related("tenant", "customer")
    )
    settings_by_tenant: dict = {}
    due: list[Due] = []
    skipped = 0
    for appointments in _pages(candidates, batch=limit):
        sent: dict = {}
        for appointment_id, kind, starts_at in AppointmentReminder.objects.filter(
            appointment__in=[a.pk for a in appointments]
        ).values_list("appointment_id", "kind", "starts_at"):
            sent.setdefault(appointment_id, set()).add((kind, starts_at))
        for appointment in appointments:
            tenant = appointment.tenant
            settings = settings_by_tenant.get(tenant.pk)
            if settings is None:
                settings = settings_by_tenant[tenant.pk] = reminder_settings_for(tenant)
            done = sent.get(appointment.pk, set())
            leads = sorted({int(m) for m in settings.lead_minutes or []})  # nearest first
            ready = []
            for lead in leads:
                due_at = appointment.starts_at - timedelta(minutes=lead)
                kind = kind_for(lead)
                if due_at > now or (kind, appointment.starts_at) in done or appointment.updated_at >= due_at:
                    continue
                ready.append((kind, due_at))
            if not ready:
                continue
            quiet_end = _quiet_until(settings, tenant, now)
            if quiet_end is not None:
                if quiet_end >= appointment.starts_at:  # it would come too late: record the skips once
                    skipped += sum(
                        reminder_record_skip(appointment=appointment, kind=kind, due_at=due_at, reason="quiet_hours")
                        for kind, due_at in ready
                    )
                continue
            (kind, due_at), *rest = ready
            due.append(
                Due(appointment=appointment, kind=kind, due_at=due_at, settings=settings, superseded=tuple(rest))
            )
    return due, skipped


def reminder_record_skip(*, appointment: Appointment, kind: str, due_at: datetime, reason: str) -> bool:
    """Record that reminder ``kind`` of ``appointment`` (its current time) is not sent (``reason``); False if a
    row for it exists already."""
    try:
        with transaction.atomic():
            AppointmentReminder.objects.create(
                tenant_id=appointment.tenant_id,
                appointment=appointment,
                kind=kind,
                starts_at=appointment.starts_at,
                due_at=due_at,
                status=AppointmentReminder.Status.SKIPPED,
                skip_reason=reason[:40],
            )
    except IntegrityError:
        return False
    return True


def reminder_claim(*, due: Due, language: str = "") -> AppointmentReminder | None:
    """Create the ``sent`` row of ``due`` (and the skipped rows of the leads it supersedes) inside the caller's
    transaction, which must also create the outbound messages; None when another run claimed it first.

    The unique constraint decides: the insert runs in a savepoint, so a concurrent or repeated run gets None and
    its transaction carries on.
    """
    appointment = due.appointment
    try:
        with transaction.atomic():
            reminder = AppointmentReminder.objects.create(
                tenant_id=appointment.tenant_id,
                appointment=appointment,
                kind=due.kind,
                starts_at=appointment.starts_at,
                due_at=due.due_at,
                status=AppointmentReminder.Status.SENT,
                language=language[:8],
            )
    except IntegrityError:
        return None
    for kind, due_at in due.superseded:
        reminder_record_skip(appointment=appointment, kind=kind, due_at=due_at, reason="superseded")
    return reminder


def reminder_set_channels(*, reminder: AppointmentReminder, channels: list[str]) -> None:
    """Record which channels the reminder went out on; none means nobody could be reached (skipped)."""
    if channels:
        reminder.channels = channels
        reminder.save(update_fields=["channels"])
    else:
        reminder.status, reminder.skip_reason = AppointmentReminder.Status.SKIPPED, "no_contact"
        reminder.save(update_fields=["status", "skip_reason"])


def reminder_remember(*, conversation: Conversation, reminder: AppointmentReminder, at: datetime | None = None) -> None:
    """Remember in ``conversation``'s session state that ``reminder`` waits for the patient's answer."""
    conv_services.state_set(
        conversation=conversation,
        key=REMINDER,
        value={"reminder_id": reminder.pk, "appointment_id": str(reminder.appointment_id)},
        at=at,
    )


def reminder_forget(*, conversation: Conversation) -> None:
    """The reminder of ``conversation`` needs no answer any more."""
    conv_services.state_delete(conversation=conversation, keys=[REMINDER])


def open_reminder(*, state: dict, customer_id, now: datetime) -> AppointmentReminder | None:
    """The reminder remembered in a conversation's ``state`` that still waits for an answer, for an appointment of
    ``customer_id`` that is booked and has not started; None otherwise (no query when nothing is remembered)."""
    value = state.get(REMINDER)
    if not isinstance(value, dict) or not value.get("reminder_id"):
        return None
    return (
        AppointmentReminder.objects.select_related("appointment")
        .filter(
            pk=value["reminder_id"],
            status=AppointmentReminder.Status.SENT,
            answer="",
            appointment__customer_id=customer_id,
            appointment__status=Appointment.Status.BOOKED,
            appointment__starts_at__gt=now,
        )
        .first()
    )


# What people answer to "Reply C to confirm, R to reschedule, X to cancel", in English and Spanish, on a phone.
_CONFIRM = re.compile(
    r"^\W*(c|y|yes+|yeah|yep|yup|ya|sure|ok(ay)?|k|confirm(ed|ing)?|correct|will do|see you( then| there)?"
    r"|i'?ll be there|i will be there|we'?ll be there|be there|perfect|great|sounds good|thanks?|thank you"
    r"|s[ií]|claro|confirmo|confirmado|confirmada|perfecto|vale|de acuerdo|all[ií] estar[ée]|ah[ií] estar[ée]"
    r"|nos vemos)\b"
    r"|^\W*(👍|👌|✅|🙂|😊|✔️|✔)+\W*$",
    re.I,
)
_CANCEL = re.compile(
    r"^\W*x\W*$|\bcancel+(l?ed|ing)?\b|\bcan'?t (make|come|go)\b|\bcannot (make|come)\b|\bwon'?t (make|be)\b"
    r"|\bcancel[ae]\w*\b|\bcancelar\w*\b|\bno (puedo|podr[ée]) (ir|asistir)\b|\banul[ae]\w*\b|^\W*❌\W*$",
    re.I,
)
_RESCHEDULE = re.compile(
    r"^\W*r\W*$|\b(re-?schedule|move|change|push (it )?back|bring (it )?forward|another (day|time)|different "
    r"(day|time)|later|earlier)\b|\b(cambiar|mover|otro d[ií]a|otra hora|reprogramar|posponer)\w*\b",
    re.I,
)
_NEGATED_CONFIRM = re.compile(r"\b(not|no|can'?t|won'?t|cannot)\b", re.I)


def reminder_answer_kind(text: str) -> str | None:
    """``"confirmed"``, ``"cancelled"``, ``"reschedule"`` or None (not an answer to the reminder: the agent
    answers it as any other message). Cancel and move win over a polite "yes" ("yes, please cancel")."""
    text = (text or "").strip().replace("\u2019", "'")
    if not text:
        return None
    if _CANCEL.search(text):
        return AppointmentReminder.Answer.CANCELLED
    if _RESCHEDULE.search(text):
        return AppointmentReminder.Answer.RESCHEDULE
    if _CONFIRM.search(text) and not _NEGATED_CONFIRM.search(text):
        return AppointmentReminder.Answer.CONFIRMED
    return None


def reminder_answer(
    *, reminder: AppointmentReminder, answer: str, conversation: Conversation, at: datetime | None = None
) -> bool:
    """Record the patient's ``answer`` to ``reminder`` (once: False if it was answered already) and forget it in
    the conversation; a confirmation also sets the appointment's ``confirmed_at``. Cancelling the appointment
    itself is the caller's (the agent's tool), so it announces the change like any cancellation."""
    at = at or timezone.now()
    with transaction.atomic():
        updated = AppointmentReminder.objects.filter(pk=reminder.pk, answer="").update(answer=answer, answered_at=at)
        if not updated:
            return False
        if answer == AppointmentReminder.Answer.CONFIRMED:
            Appointment.objects.filter(pk=reminder.appointment_id, confirmed_at__isnull=True).update(confirmed_at=at)
        reminder_forget(conversation=conversation)
    reminder.answer, reminder.answered_at = answer, at
    return True


def appointment_check_in(*, appointment: Appointment, at: datetime | None = None) -> bool:
    """Staff checked the patient in (admin); True if it changed anything. A no-show becomes booked again."""
    at = at or timezone.now()
    return bool(
        Appointment.objects.filter(
            pk=appointment.pk,
            tenant_id=appointment.tenant_id,
            checked_in_at__isnull=True,
            status__in=[Appointment.Status.BOOKED, Appointment.Status.NO_SHOW],
        ).update(checked_in_at=at, status=Appointment.Status.BOOKED)
    )


def _announce_no_show(appointment_id, version: int) -> None:
    appointment_changed.send(sender=Appointment, appointment_id=appointment_id, change="no_show", version=version)


def no_show_sweep(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> int:
    """Mark booked appointments nobody checked in for ``no_show_after_minutes`` after their start as no-shows
    (tenants with ``record_no_shows``); started at most :data:`NO_SHOW_LOOKBACK` ago, ``limit`` rows per query.
    Returns how many."""
    now = now or timezone.now()
    shortest = min(
        [s.no_show_after_minutes for s in ReminderSettings.objects.filter(record_no_shows=True)]
        + [ReminderSettings().no_show_after_minutes]
    )
    candidates = (
        Appointment.objects.filter(
            status=Appointment.Status.BOOKED,
            checked_in_at__isnull=True,
            starts_at__lt=now - timedelta(minutes=shortest),
            starts_at__gte=now - NO_SHOW_LOOKBACK,
        )
        .exclude(tenant__reminder_settings__record_no_shows=False)
        .select_related("tenant")
    )
    settings_by_tenant: dict = {}
    marked = 0
    for page in _pages(candidates, batch=limit):
        for appointment in page:
            settings = settings_by_tenant.get(appointment.tenant_id)
            if settings is None:
                settings = settings_by_tenant[appointment.tenant_id] = reminder_settings_for(appointment.tenant)
            if appointment.starts_at >= now - timedelta(minutes=settings.no_show_after_minutes):
                continue
            with transaction.atomic():
                version = (
                    Appointment.objects.filter(
                        pk=appointment.pk, status=Appointment.Status.BOOKED, checked_in_at__isnull=True
                    )
                    .select_for_update()
                    .values_list("version", flat=True)
                    .first()
                )
                if version is None:  # checked in, moved or cancelled meanwhile
                    continue
                Appointment.objects.filter(pk=appointment.pk).update(
                    status=Appointment.Status.NO_SHOW, version=version + 1, updated_at=now
                )
                transaction.on_commit(partial(_announce_no_show, appointment.pk, version + 1), robust=True)
            marked += 1
    if marked:
        logger.info("recorded %d no-show(s)", marked)
    return marked
