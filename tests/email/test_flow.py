"""Confirmation email → the patient's reply from Gmail → the agent offers the move in-thread → "Yes please" moves the
appointment (one booking, never two)."""

from __future__ import annotations

from datetime import datetime, time
from email import message_from_bytes, policy

import pytest
from django.core import mail

from channels_app.confirmations import appointment_send_confirmation
from channels_app.email.ingest import email_ingest
from channels_app.email.outbound import email_deliver
from channels_app.email.triage import email_triage
from channels_app.models import InboundEmail, OutboundEmail
from conversations.appointments import appointment_book
from conversations.models import Appointment, ChannelMessage, Interaction
from conversations.services import interaction_append_turn, session_open
from tests.clock import next_weekday
from tests.email.conftest import CLINIC, PATIENT_EMAIL, gmail_reply, plain

pytestmark = pytest.mark.django_db


def _deliver_pending() -> list:
    sent = []
    for message in ChannelMessage.objects.filter(channel="email", status="pending").order_by("pk"):
        sent.append(email_deliver(message_id=message.pk))
    return sent


def _wire(email) -> object:
    """What the recipient receives: the Django message serialised and parsed back (real RFC 5322 bytes)."""
    return message_from_bytes(email.message().as_bytes(), policy=policy.default)


@pytest.fixture
def booked(tenant, mailbox, patient):
    """An appointment booked by SMS on the next Wednesday, 10:00 clinic time."""
    sms, _ = session_open(tenant=tenant, customer=patient, channel="sms")
    interaction_append_turn(interaction=sms, role="customer", text="Book me Wednesday 10am")
    day = next_weekday(tenant, 2)
    return appointment_book(
        tenant=tenant,
        customer=patient,
        conversation=sms.conversation,
        booked_via="sms",
        starts_at=datetime.combine(day, time(10, 0), tenant.tzinfo),
    )


def test_confirmation_reply_reschedules_and_answers_in_thread(
    tenant, mailbox, patient, booked, django_capture_on_commit_callbacks
):
    assert appointment_send_confirmation(appointment_id=booked.pk, change="booked", version=booked.version) == "sms"
    _deliver_pending()
    assert len(mail.outbox) == 1
    confirmation = _wire(mail.outbox[0])
    assert confirmation["To"] == PATIENT_EMAIL
    assert confirmation["Reply-To"].startswith("frontdesk+") and confirmation["Reply-To"].endswith("@sunrise.example")
    assert confirmation["Auto-Submitted"] == "auto-generated"
    ics = [p for p in confirmation.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert ics and "BEGIN:VEVENT" in ics[0].get_content() and f"appointment-{booked.pk}" in ics[0].get_content()

    reply = gmail_reply(confirmation, body="Can you make it 3 PM?")
    result = email_ingest(raw=reply.as_bytes(), source=InboundEmail.Source.WEBHOOK)
    assert result.status == "accepted" and result.email.reply_text.startswith("Can you make it 3 PM?")
    assert "wrote:" not in result.email.reply_text and ">" not in result.email.reply_text
    assert result.email.interaction.conversation_id == booked.conversation_id

    outcome = email_triage(inbound_id=result.email.pk)
    assert outcome.decision == "answered"
    booked.refresh_from_db()
    assert booked.version == 1  # nothing moves before the patient says yes

    mail.outbox.clear()
    _deliver_pending()
    answer = _wire(next(m for m in mail.outbox if m.extra_headers.get("Auto-Submitted") == "auto-replied"))
    assert answer["In-Reply-To"] == reply["Message-ID"]
    assert answer["References"].split()[-1] == reply["Message-ID"]
    assert confirmation["Message-ID"] in answer["References"]
    assert answer["Subject"] == reply["Subject"]
    assert answer["Reply-To"] == confirmation["Reply-To"]
    assert answer["Message-ID"] and answer["Message-ID"] != confirmation["Message-ID"]
    text = answer.get_body(preferencelist=("plain",)).get_content()
    assert "Shall I move it" in text and "3:00 PM" in text, text
    stored = ChannelMessage.objects.get(pk=outcome.reply_id)
    assert stored.provider_id == answer["Message-ID"] and stored.status == "sent"

    yes = gmail_reply(answer, body="Yes please")
    result = email_ingest(raw=yes.as_bytes(), source=InboundEmail.Source.WEBHOOK)
    assert result.status == "accepted" and result.email.interaction.conversation_id == booked.conversation_id
    assert email_triage(inbound_id=result.email.pk).decision == "answered"
    booked.refresh_from_db()
    local = booked.starts_at.astimezone(tenant.tzinfo)
    assert (local.hour, local.minute) == (15, 0) and booked.version == 2
    assert booked.status == Appointment.Status.BOOKED
    assert Appointment.objects.filter(customer=patient).count() == 1
    mail.outbox.clear()
    _deliver_pending()
    done = next(m for m in mail.outbox if m.extra_headers.get("Auto-Submitted") == "auto-replied")
    assert "moved to" in done.body and "3:00 PM" in done.body, done.body

    channels = set(Interaction.objects.filter(conversation=booked.conversation).values_list("channel", flat=True))
    assert {"sms", "email"} <= channels


def test_reply_token_threads_without_in_reply_to_and_subject_never_does(tenant, mailbox, patient, booked):
    appointment_send_confirmation(appointment_id=booked.pk, change="booked", version=booked.version)
    _deliver_pending()
    confirmation = _wire(mail.outbox[0])
    # A client that dropped In-Reply-To / References still sends to the plus-address.
    stripped = plain(body="Is parking available?", subject="parking", to=confirmation["Reply-To"])
    first = email_ingest(raw=stripped.as_bytes(), source=InboundEmail.Source.WEBHOOK)
    assert first.status == "accepted" and first.email.reason == "thread: reply-token"
    assert first.email.interaction.conversation_id == booked.conversation_id
    # Same subject as the confirmation, sent by a stranger to the plain address: not threaded by subject.
    stranger = plain(body="Hello", subject=str(confirmation["Subject"]), sender="Eve <eve@example.net>")
    other = email_ingest(raw=stranger.as_bytes(), source=InboundEmail.Source.WEBHOOK)
    assert other.status == "accepted" and other.email.reason == ""
    assert other.email.interaction.customer_id != patient.pk


def test_unknown_sender_on_known_thread_is_attached_but_flagged(tenant, mailbox, patient, booked):
    appointment_send_confirmation(appointment_id=booked.pk, change="booked", version=booked.version)
    _deliver_pending()
    confirmation = _wire(mail.outbox[0])
    forwarded = gmail_reply(confirmation, body="Cancel it please", sender="Someone <someone@elsewhere.example>")
    result = email_ingest(raw=forwarded.as_bytes(), source=InboundEmail.Source.WEBHOOK)
    assert result.status == "accepted" and result.email.identity_confirmed is False
    interaction = result.email.interaction
    assert interaction.customer_id == patient.pk and interaction.conversation_id == booked.conversation_id
    assert interaction.workflow["identity_unconfirmed"] == "someone@elsewhere.example"
    email_triage(inbound_id=result.email.pk)
    booked.refresh_from_db()
    assert booked.status == Appointment.Status.BOOKED  # an unconfirmed sender cannot change the booking
    assert OutboundEmail.objects.filter(kind="reply", channel_message__recipient="someone@elsewhere.example").exists()


def test_new_email_from_new_sender_opens_a_conversation_with_a_customer(tenant, mailbox):
    msg = plain(body="Do you take new patients?", sender="Ann Lee <Ann.Lee@Example.org>", to=f"Clinic <{CLINIC}>")
    result = email_ingest(raw=msg.as_bytes(), source=InboundEmail.Source.WEBHOOK)
    assert result.status == "accepted"
    interaction = result.email.interaction
    assert interaction.channel == "email" and interaction.customer.display_name == "Ann Lee"
    assert interaction.customer.identifiers.get(kind="email").value == "ann.lee@example.org"
    assert interaction.transcript[-1]["text"] == "Do you take new patients?"
    assert interaction.metadata["message_ids"] == [msg["Message-ID"]]
