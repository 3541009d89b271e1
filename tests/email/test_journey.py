"""The brief's journey in one run (issue 15, item 8): a call books "Tuesday at 2 PM" and asks for the chat link
before dropping → the patient opens the texted link, gives an email and proves it → the confirmation email goes
out → the patient replies "Can you make it 3 PM?" and then "Yes please" → one appointment, at 3 PM, and one
conversation with voice, SMS, chat and email rows. Through the signed Twilio webhooks, the chat service the
websocket consumer calls (with the link's token), the email ingest and triage — no state set by hand."""

from __future__ import annotations

import re
from datetime import datetime, time

import pytest
from django.core import mail

from channels_app import twilio_payloads
from channels_app.chat import services as chat
from channels_app.confirmations import chat_link_send
from channels_app.email.ingest import email_ingest
from channels_app.email.triage import email_triage
from channels_app.models import InboundEmail
from conversations.models import Appointment, ChannelMessage, Interaction
from tests.clock import next_weekdays_since
from tests.email.conftest import PATIENT_EMAIL, PATIENT_PHONE, gmail_reply
from tests.email.test_flow import _deliver_pending, _wire

pytestmark = pytest.mark.django_db
CLINIC_NUMBER = "+15550100001"
VISITOR = "j" * 8 + "0123456789abcdef"


def test_call_then_chat_link_then_email_reply_moves_the_one_booking(tenant, mailbox, twilio_post):
    from django.utils import timezone

    started = timezone.now()
    account = tenant.twilio_account_sid
    call = twilio_payloads.inbound_call(account_sid=account, from_=PATIENT_PHONE, to=CLINIC_NUMBER)
    assert twilio_post("/twilio/voice/", call, tenant=tenant).status_code == 200

    def say(turn: int, speech: str) -> None:
        params = twilio_payloads.gather_speech(
            account_sid=account, call_sid=call["CallSid"], from_=PATIENT_PHONE, to=CLINIC_NUMBER, speech=speech
        )
        assert twilio_post(f"/twilio/voice/gather/?turn={turn}", params, tenant=tenant).status_code == 200

    say(1, "Hi, I'd like to book an appointment for Tuesday at 2 PM")
    appointment = Appointment.objects.get()
    day = appointment.starts_at.astimezone(tenant.tzinfo).date()
    assert day in next_weekdays_since(tenant, 1, started)
    assert appointment.starts_at == datetime.combine(day, time(14), tenant.tzinfo)
    say(2, "Can you text me a link so I can continue in chat?")
    voice = Interaction.objects.get(channel="voice")
    chat_link_send(interaction_id=voice.pk, ref="2")  # what the queued task does
    ended = twilio_payloads.call_status(
        account_sid=account, call_sid=call["CallSid"], from_=PATIENT_PHONE, to=CLINIC_NUMBER, status="completed"
    )
    assert twilio_post("/twilio/voice/status/", ended, tenant=tenant).status_code in (200, 204)

    link_sms = ChannelMessage.objects.get(idempotency_key__startswith="chat-link:")
    token = re.search(r"/c/(\S+)", link_sms.body).group(1)
    session, frames = chat.chat_hello(tenant=tenant, visitor=VISITOR, link=token)
    assert "Tuesday" in frames[-1]["text"]  # "Welcome back! Your next appointment is on Tuesday…"
    chat.chat_message(session=session, client_id="msg-000001", text=f"sure, my email is {PATIENT_EMAIL}")
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
    chat.chat_message(session=session, client_id="msg-000002", text=code)

    mail.outbox.clear()
    _deliver_pending()
    confirmation = _wire(next(m for m in mail.outbox if "appointment" in m.subject.lower()))
    assert confirmation["To"] == PATIENT_EMAIL

    reply = gmail_reply(confirmation, body="Can you make it 3 PM?")
    result = email_ingest(raw=reply.as_bytes(), source=InboundEmail.Source.WEBHOOK)
    assert result.status == "accepted"
    assert email_triage(inbound_id=result.email.pk).decision == "answered"
    mail.outbox.clear()
    _deliver_pending()
    offer = _wire(next(m for m in mail.outbox if m.extra_headers.get("Auto-Submitted") == "auto-replied"))
    assert "Shall I move it" in offer.get_body(preferencelist=("plain",)).get_content()
    appointment.refresh_from_db()
    assert appointment.starts_at.astimezone(tenant.tzinfo).hour == 14  # nothing moves before a yes

    yes = gmail_reply(offer, body="Yes please")
    result = email_ingest(raw=yes.as_bytes(), source=InboundEmail.Source.WEBHOOK)
    assert email_triage(inbound_id=result.email.pk).decision == "answered"

    [only] = Appointment.objects.all()
    assert only.status == "booked" and only.starts_at == datetime.combine(day, time(15), tenant.tzinfo)
    conversation = only.conversation or voice.conversation
    channels = set(Interaction.objects.filter(conversation=conversation).values_list("channel", flat=True))
    assert channels == {"voice", "sms", "chat", "email"}, channels
