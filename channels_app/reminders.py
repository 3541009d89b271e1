"""Sending appointment reminders (beat) and the no-show sweep; what is due is :mod:`conversations.reminders`.

One transaction per reminder: the ``AppointmentReminder`` row (unique per appointment, kind and time), the
outbound SMS to the patient's verified phone that has not opted out (STOP) and, when the tenant allows it, the
email to a verified address, both keyed ``reminder:<id>`` and delivered on commit; the reminder is remembered
in the conversation the SMS opened so a reply ("C", "👍", "can we move it to thursday?") is understood there
(:func:`conversations.agent.engine._reminder_reply`). The text is PHI-minimal: clinic, day and time, how to
answer — never the reason for the visit.
"""

from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from channels_app.confirmations import textable_phone
from conversations.agent.dates import say_when
from conversations.language import language_of
from conversations.models import Appointment, Channel, Conversation
from conversations.reminders.models import AppointmentReminder
from conversations.reminders.services import (
    Due,
    no_show_sweep,
    reminder_claim,
    reminder_remember,
    reminder_set_channels,
    reminders_due,
)

logger = logging.getLogger(__name__)


def reminder_text(appointment: Appointment) -> str:
    """``Sunrise Clinic: reminder of your appointment on Tuesday, December 8 at 2:00 PM. Reply C to confirm, R to
    reschedule, X to cancel.`` — no name, no reason for the visit."""
    tenant = appointment.tenant
    with translation.override(language_of(appointment.customer)):
        when = say_when(appointment.starts_at.astimezone(tenant.tzinfo))
        return _(
            "{clinic}: reminder of your appointment on {when}. Reply C to confirm, R to reschedule, X to cancel."
        ).format(clinic=tenant.short_name, when=when)


def reminder_subject(appointment: Appointment) -> str:
    """The reminder email's subject, in the patient's language."""
    with translation.override(language_of(appointment.customer)):
        return _("Reminder: your appointment at {clinic}").format(clinic=appointment.tenant.short_name)


def _send_sms(reminder: AppointmentReminder, appointment: Appointment, body: str) -> Conversation | None:
    from channels_app.sms.services import sms_send

    phone = textable_phone(tenant=appointment.tenant, customer=appointment.customer)
    if not phone:
        return None
    message = sms_send(
        tenant=appointment.tenant,
        customer=appointment.customer,
        to=phone,
        body=body,
        idempotency_key=f"reminder:{reminder.pk}",
    )
    return message.interaction.conversation


def _send_email(reminder: AppointmentReminder, appointment: Appointment, body: str) -> Conversation | None:
    from channels_app.email.outbound import email_to_patient, verified_email_of
    from channels_app.models import OutboundEmail

    to = verified_email_of(appointment.customer)
    if not to:
        return None
    interaction = email_to_patient(
        customer=appointment.customer,
        to=to,
        body=body,
        subject=reminder_subject(appointment),
        kind=OutboundEmail.Kind.REMINDER,
        idempotency_key=f"reminder:{reminder.pk}:email",
    )
    return interaction.conversation


def reminder_send(*, due: Due) -> AppointmentReminder | None:
    """Claim and send one due reminder (SMS, and email when allowed), in one transaction of its own (call it
    outside any transaction: the sends are queued on its commit); None when another run had claimed it. Nobody
    reachable (no verified phone, opted out, no verified email) → the reminder row stays, recorded as skipped."""
    appointment = due.appointment
    with transaction.atomic():
        reminder = reminder_claim(due=due, language=language_of(appointment.customer))
        if reminder is None:
            return None
        body = reminder_text(appointment)
        channels, conversation = [], None
        if by_sms := _send_sms(reminder, appointment, body):
            channels.append(Channel.SMS.value)
            conversation = by_sms
        if due.settings.by_email and (by_email := _send_email(reminder, appointment, body)):
            channels.append(Channel.EMAIL.value)
            conversation = by_email
        if conversation is not None:  # the patient's answer, on either channel, lands in this conversation
            reminder_remember(conversation=conversation, reminder=reminder)
        reminder_set_channels(reminder=reminder, channels=channels)
    if not channels:
        logger.info("reminder %s of appointment %s: nobody reachable", reminder.pk, appointment.pk)
    return reminder


def reminders_send_due(*, now: datetime | None = None) -> dict[str, int]:
    """Send every reminder due at ``now`` (aware; default now); ``{"sent": n, "skipped": m}``. Safe to run twice
    at once: the constraint lets one run claim each reminder."""
    now = now or timezone.now()
    due, skipped = reminders_due(now=now)
    sent = 0
    for item in due:
        reminder = reminder_send(due=item)
        if reminder is None:
            continue
        if reminder.status == AppointmentReminder.Status.SENT:
            sent += 1
        else:
            skipped += 1
    return {"sent": sent, "skipped": skipped}


@shared_task(ignore_result=True)
def send_due_reminders() -> dict[str, int]:
    """Beat (every minute): send the appointment reminders that are due (:func:`reminders_send_due`)."""
    return reminders_send_due()


@shared_task(ignore_result=True)
def record_no_shows() -> int:
    """Beat (every 5 minutes): booked appointments nobody checked in for become no-shows."""
    return no_show_sweep()
