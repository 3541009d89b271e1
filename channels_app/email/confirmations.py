"""Appointment confirmations by email, with an iCalendar (.ics, RFC 5545) file, threaded into the conversation.

Registered with :func:`channels_app.confirmations.register_confirmation_companion`: sent whenever the customer
has an email address (in addition to the best-channel confirmation, since only email carries the calendar
file). The event's ``UID`` is the appointment's and ``SEQUENCE`` its version, so calendar apps replace the
earlier copy on a change; a cancellation is ``METHOD:CANCEL`` / ``STATUS:CANCELLED``. The message joins the
conversation's email thread: ``In-Reply-To`` / ``References`` point at the conversation's latest emails and
``Reply-To`` is its reply address, so "Can you make it 3 PM?" lands back in the same conversation.
"""

from __future__ import annotations

import logging
from datetime import UTC

import icalendar
from django.utils import timezone

from channels_app.confirmations import confirmation_text
from channels_app.email.outbound import conversation_email_ids, email_prepare
from channels_app.email.threading import tenant_address
from channels_app.models import EmailThread, OutboundEmail
from conversations.models import Appointment, Channel
from conversations.services import session_open
from identity.models import CustomerIdentifier, IdentifierKind

logger = logging.getLogger(__name__)

PRODID = "-//callsphere//appointments//EN"


def appointment_ics(appointment: Appointment, change: str) -> str:
    """The VCALENDAR text of one appointment (times in UTC, no reason for the visit: PHI-minimal)."""
    tenant = appointment.tenant
    cancelled = change == "cancelled" or appointment.status == Appointment.Status.CANCELLED
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "PUBLISH")
    event = icalendar.Event()
    event.add("uid", f"appointment-{appointment.pk}@{tenant_address(tenant).rpartition('@')[2]}")
    event.add("dtstamp", timezone.now())
    event.add("dtstart", appointment.starts_at.astimezone(UTC))
    event.add("dtend", appointment.ends_at.astimezone(UTC))
    event.add("sequence", appointment.version)
    event.add("summary", f"Appointment at {tenant.short_name}")
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("organizer", f"mailto:{tenant_address(tenant)}", parameters={"CN": tenant.short_name})
    calendar.add_component(event)
    return calendar.to_ical().decode()


def _email_of(appointment: Appointment) -> str | None:
    # Only a verified address (one we received authenticated mail from): a forged From must not be able to
    # attach an address and receive the patient's appointment details.
    return (
        CustomerIdentifier.objects.filter(customer=appointment.customer, kind=IdentifierKind.EMAIL, verified=True)
        .order_by("created_at")
        .values_list("value", flat=True)
        .first()
    )


def email_confirmation_send(appointment: Appointment, change: str) -> bool:
    """Prepare (once per appointment version) the confirmation email; False when the customer has no email."""
    to = _email_of(appointment)
    if not to:
        return False
    tenant = appointment.tenant
    interaction, _ = session_open(
        tenant=tenant,
        customer=appointment.customer,
        channel=Channel.EMAIL,
        direction="outbound",
        idle_window=tenant.sms_idle_window,
    )
    thread = EmailThread.objects.filter(conversation_id=interaction.conversation_id).first()
    ids = conversation_email_ids(interaction.conversation_id)
    subject = thread.subject if thread and thread.subject else f"Your appointment at {tenant.short_name}"
    if ids and not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    email_prepare(
        interaction=interaction,
        to=to,
        body=confirmation_text(appointment, change),
        subject=subject,
        kind=OutboundEmail.Kind.CONFIRMATION,
        idempotency_key=f"appointment:{appointment.pk}:v{appointment.version}:email",
        in_reply_to=ids[-1] if ids else "",
        references=ids,
        ics=appointment_ics(appointment, change),
    )
    return True


def email_confirmations_for_new_address(*, customer, limit: int = 3) -> int:
    """A patient just proved an email address (the chat code): email them the confirmation (with the .ics) of
    their upcoming appointments — booked by phone or SMS before we knew the address — so a reply to it ("Can you
    make it 3 PM?") lands in the conversation. Keyed per appointment version like every confirmation, so an
    appointment already confirmed by email is not sent again. Returns how many were prepared."""
    from conversations.appointments import upcoming_for_customer

    sent = 0
    for appointment in upcoming_for_customer(customer=customer).select_related("tenant", "customer")[:limit]:
        change = "booked" if appointment.version == 1 else "rescheduled"
        sent += email_confirmation_send(appointment, change)
    return sent
