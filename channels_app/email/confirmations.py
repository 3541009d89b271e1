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
from channels_app.email.outbound import email_to_patient, verified_email_of
from channels_app.email.threading import tenant_address
from channels_app.models import OutboundEmail
from conversations.models import Appointment

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


def email_confirmation_send(appointment: Appointment, change: str) -> bool:
    """Prepare (once per appointment version) the confirmation email; False when the customer has no email."""
    to = verified_email_of(appointment.customer)
    if not to:
        return False
    email_to_patient(
        customer=appointment.customer,
        to=to,
        body=confirmation_text(appointment, change),
        subject=f"Your appointment at {appointment.tenant.short_name}",
        kind=OutboundEmail.Kind.CONFIRMATION,
        idempotency_key=f"appointment:{appointment.pk}:v{appointment.version}:email",
        ics=appointment_ics(appointment, change),
        in_thread=True,
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
