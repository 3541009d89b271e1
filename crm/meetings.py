"""Appointments → the CRM's meeting / event: a HubSpot meeting, a Salesforce Event, a Zoho CRM Event.

Every appointment change (``appointment_changed``: booked, rescheduled, cancelled) adds
one outbox row per active connection, keyed by the appointment's ``version`` (:func:`crm_appointment_enqueue`),
delivered like an interaction's activity (:mod:`crm.services`: lease, fencing token, retries, dead letters,
replay). The sync reads the appointment as it is *now*, so a late retry of an older version never moves the
meeting back, and the record map makes the first delivery create the meeting and every later one update it.
Two deliveries of one appointment never run at once (:func:`crm.services._claim` defers the second), so they
cannot both create a meeting.

What leaves (:func:`meeting_data`): "Appointment" (plus the calendar's name when it is not the default
``main``), start and end (UTC), the outcome and a link to the appointment in our admin — never the reason for
the visit, the patient's words or their date of birth (HIPAA minimum necessary), unless the connection's
``appointment_reason`` switch (off by default) lets the reason for the visit into the description. A connection
with ``sync_appointments`` off gets no outbox rows for appointments.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from conversations.models import Appointment
from crm.clients.base import CrmClient, CrmRejected, MeetingData
from crm.contacts import contact_upsert, mapped_upsert
from crm.models import CrmConnection, CrmDelivery, CrmRecordMap
from crm.outbox import queue_deliveries

DEFAULT_CALENDAR = "main"


def _outcome(appointment: Appointment) -> str:
    if appointment.status == Appointment.Status.CANCELLED:
        return "cancelled"
    if appointment.status == Appointment.Status.NO_SHOW:
        return "no_show"
    return "rescheduled" if appointment.version > 1 else "scheduled"  # version is bumped by a move or a cancel


def meeting_data(appointment: Appointment, *, with_reason: bool = False) -> MeetingData:
    """The meeting for ``appointment``: title, a plain body without PHI, times, outcome and the admin link.

    ``with_reason`` (the connection's ``appointment_reason``) adds the patient's reason for the visit (their
    intake answer, ``Customer.visit_reason``) to the body — never to the title."""
    title = "Appointment"
    if appointment.resource and appointment.resource != DEFAULT_CALENDAR:
        title = f"Appointment — {appointment.resource}"
    admin_url = f"{settings.PUBLIC_BASE_URL}/admin/conversations/appointment/{appointment.pk}/change/"
    outcome = _outcome(appointment)
    lines = [
        f"Status: {outcome.replace('_', '-')}",
        f"Booked via: {appointment.get_booked_via_display() or 'staff'}",
        f"Details (staff sign-in): {admin_url}",
    ]
    reason = " ".join((appointment.customer.visit_reason or "").split()) if with_reason else ""  # one line
    if reason:
        lines.insert(2, f"Reason for visit: {reason[:500]}")
    return MeetingData(
        appointment_id=str(appointment.pk),
        title=title,
        body="\n".join(lines),
        starts_at=appointment.starts_at.astimezone(UTC),
        ends_at=appointment.ends_at.astimezone(UTC),
        outcome=outcome,
        admin_url=admin_url,
    )


def crm_appointment_enqueue(*, appointment_id, version: int, at: datetime | None = None) -> list[int]:
    """Add an outbox row per active CRM connection of the appointment's tenant for ``version`` (idempotent:
    ``crm_appointment_delivery_once``) and queue their tasks on commit. Returns the ids of rows created now."""
    at = at or timezone.now()
    # one indexed read (the appointment's tenant's active connections) for the common clinic without a CRM
    connections = list(
        CrmConnection.objects.filter(
            tenant__appointments=appointment_id, status=CrmConnection.Status.ACTIVE, sync_appointments=True
        )
    )
    created: list[int] = []
    with transaction.atomic():
        for connection in connections:
            row, new = CrmDelivery.objects.get_or_create(
                connection=connection,
                appointment_id=appointment_id,
                version=str(version),
                defaults={"tenant_id": connection.tenant_id, "next_attempt_at": at},
            )
            if new:
                created.append(row.pk)
        if created:
            transaction.on_commit(lambda: queue_deliveries(created), robust=True)
    return created


def meeting_sync(client: CrmClient, connection: CrmConnection, appointment: Appointment, *, fence: Callable) -> None:
    """Upsert the patient's contact, then create the appointment's meeting or update the mapped one (a meeting
    deleted in the CRM — 404 — is created again). Raises the client's ``CrmError`` subclasses, and
    ``CrmRejected`` (a dead letter, nothing sent) when the connection's ``sync_appointments`` was switched off
    after this change was queued."""
    if not connection.sync_appointments:
        raise CrmRejected("appointments are switched off for this connection; nothing was sent", status_code=None)
    contact_id = contact_upsert(client, connection, appointment.customer, fence=fence)
    meeting = meeting_data(appointment, with_reason=connection.appointment_reason)
    mapped_upsert(
        connection,
        CrmRecordMap.Kind.APPOINTMENT,
        appointment.pk,
        update=lambda remote_type, remote_id: client.update_meeting(remote_type, remote_id, meeting),
        create=lambda: client.create_meeting(meeting, contact_id=contact_id),
        fence=fence,
    )
