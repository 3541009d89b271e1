"""Done when: a booking started on a call that drops mid-way is finished in chat — one conversation, a voice and
a chat row, the appointment booked.

The chat channel (websocket consumer) is being built in parallel; this test finishes the booking through
``conversations.engine`` on a chat session opened with ``conversations.services.session_open(channel="chat")`` —
exactly what the consumer does per message — so it does not depend on the consumer's internals.
"""

import zoneinfo

import pytest

from conversations import engine
from conversations.models import Appointment, Conversation, Interaction
from conversations.services import interaction_append_turn, session_open
from identity.services import customer_resolve
from tests.voice.phone import CALLER, says


def chat_turn(interaction, text):
    interaction_append_turn(interaction=interaction, role="customer", text=text)
    reply = engine.respond(interaction=interaction, text=text)
    interaction_append_turn(interaction=interaction, role="agent", text=reply.text, actions=reply.actions)
    return reply


@pytest.mark.django_db
def test_booking_dropped_on_a_call_is_finished_in_chat(phone, tenant):
    phone.answer()
    asked_day = phone.say("Hi, this is Ana, I'd like to book an appointment")
    assert "day" in says(asked_day)[0].lower()
    asked_time = phone.say("Tuesday please")
    assert "Tuesday" in says(asked_time)[0]
    assert phone.status("completed", 37).status_code == 204  # the line drops before a time is chosen

    voice = Interaction.objects.get(channel="voice")
    assert voice.ended_at is not None and voice.metadata["duration_seconds"] == 37
    assert [t["role"] for t in voice.transcript] == ["agent", "customer", "agent", "customer", "agent"]

    # the same person opens the website chat and gives their phone number: same customer, same conversation
    customer = customer_resolve(tenant=tenant, phone=CALLER, cookie="cookie-ana").customer
    chat, created = session_open(tenant=tenant, customer=customer, channel="chat")
    assert created
    greeting = engine.greet(interaction=chat).text
    assert "Tuesday" in greeting and "booking" in greeting  # picks up the pending booking from the call
    interaction_append_turn(interaction=chat, role="agent", text=greeting, event="greeting")
    reply = chat_turn(chat, "10am works")
    assert "book_appointment" in reply.actions

    appointment = Appointment.objects.get()
    local = appointment.starts_at.astimezone(zoneinfo.ZoneInfo(tenant.timezone))
    assert (local.strftime("%A"), local.hour, local.minute) == ("Tuesday", 10, 0)
    assert appointment.customer == voice.customer and appointment.booked_via == "chat"
    assert Conversation.objects.count() == 1
    rows = Interaction.objects.filter(conversation=voice.conversation)
    assert sorted(rows.values_list("channel", flat=True)) == ["chat", "voice"]
    assert appointment.conversation_id == voice.conversation_id
