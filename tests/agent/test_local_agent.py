"""The agent with the local backend: slot-filling across channels, continuity, tools, identity check."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations import engine
from conversations.agent.engine import greet, turn
from conversations.appointments import BookingError, appointment_book
from conversations.models import (
    AgentSettings,
    Appointment,
    CallbackRequest,
    Interaction,
    SessionState,
    StaffNotification,
)
from conversations.selectors import state_get_all
from conversations.services import state_set
from tests.clock import local, next_weekday, next_weekdays_since

pytestmark = pytest.mark.django_db(transaction=False)
TUESDAY = 1


def test_booking_across_sms_and_chat_keeps_the_pending_day(tenant, customer, open_session):
    sms = open_session("sms")
    started = timezone.now()
    reply = engine.respond(interaction=sms, text="I'd like to book for Tuesday")
    assert "what time" in reply.text.lower() and "Tuesday" in reply.text
    pending = state_get_all(conversation=sms.conversation)["pending"]
    tuesday = date.fromisoformat(pending["date"])
    assert tuesday in next_weekdays_since(tenant, TUESDAY, started)  # the next Tuesday, midnight or not
    assert pending == {"intent": "book", "date": tuesday.isoformat(), "time": None}

    chat = open_session("chat")
    assert chat.conversation_id == sms.conversation_id
    hello = greet(interaction=chat)
    assert hello.text.startswith("Welcome back") and "Tuesday" in hello.text and "what time" in hello.text

    reply = turn(interaction=chat, text="2 PM")
    appointment = Appointment.objects.get()
    assert appointment.starts_at == local(tenant, tuesday, 14)
    assert appointment.starts_at.astimezone(tenant.tzinfo).hour == 14
    assert appointment.booked_via == "chat" and appointment.conversation_id == chat.conversation_id
    assert "book_appointment" in reply.actions and "2:00 PM" in reply.text
    assert "pending" not in state_get_all(conversation=chat.conversation)


def test_one_message_with_day_and_time_books(tenant, customer, open_session):
    started = timezone.now()
    reply = turn(interaction=open_session(), text="Can I book an appointment tuesday at 10:30am?")
    starts_at = Appointment.objects.get().starts_at
    day = starts_at.astimezone(tenant.tzinfo).date()
    assert day in next_weekdays_since(tenant, TUESDAY, started) and starts_at == local(tenant, day, 10, 30)
    assert "10:30 AM" in reply.text


def test_expired_state_is_not_used(tenant, customer, open_session):
    sms = open_session("sms")
    turn(interaction=sms, text="I'd like to book for Tuesday")
    SessionState.objects.filter(conversation=sms.conversation).update(expires_at=timezone.now() - timedelta(seconds=1))
    chat = open_session("chat")
    hello = greet(interaction=chat)
    assert "Tuesday" not in hello.text and "Welcome back" not in hello.text
    reply = turn(interaction=chat, text="2 PM")
    assert not Appointment.objects.exists()
    assert "which day" in reply.text.lower()


def test_state_older_than_the_tenant_ttl_is_ignored(tenant, customer, open_session):
    sms = open_session("sms")
    long_ago = timezone.now() - tenant.state_ttl - timedelta(minutes=1)
    state_set(conversation=sms.conversation, key="pending", value={"intent": "book", "date": "2030-01-01"}, at=long_ago)
    assert "Welcome back" not in greet(interaction=open_session("chat")).text


def test_start_fresh_resets_pending_state(tenant, customer, open_session):
    sms = open_session("sms")
    turn(interaction=sms, text="I'd like to book for Tuesday")
    reply = turn(interaction=sms, text="Actually, let's start over")
    assert reply.actions == ["start_fresh"]
    assert state_get_all(conversation=sms.conversation) == {}
    assert "Tuesday" not in greet(interaction=open_session("chat")).text


def test_double_booking_is_refused_by_the_database(tenant, customer):
    from tests.factories import CustomerFactory

    start = local(tenant, next_weekday(tenant, TUESDAY), 14)
    Appointment.objects.create(tenant=tenant, customer=customer, starts_at=start, ends_at=start + timedelta(minutes=30))
    other = CustomerFactory(tenant=tenant)
    with pytest.raises(IntegrityError), transaction.atomic():  # overlapping, not equal: still refused
        Appointment.objects.create(
            tenant=tenant,
            customer=other,
            starts_at=start + timedelta(minutes=15),
            ends_at=start + timedelta(minutes=45),
        )
    with pytest.raises(BookingError) as caught:
        appointment_book(tenant=tenant, customer=other, starts_at=start)
    assert caught.value.code == "taken" and start not in caught.value.alternatives
    # a cancelled appointment frees its slot; another resource is a different calendar
    Appointment.objects.update(status="cancelled")
    assert appointment_book(tenant=tenant, customer=other, starts_at=start).customer == other
    Appointment.objects.create(
        tenant=tenant, customer=customer, resource="room-2", starts_at=start, ends_at=start + timedelta(minutes=30)
    )


def test_taken_slot_offers_alternatives_and_keeps_the_day(tenant, customer, open_session):
    from tests.factories import CustomerFactory

    tuesday = next_weekday(tenant, TUESDAY)
    appointment_book(tenant=tenant, customer=CustomerFactory(tenant=tenant), starts_at=local(tenant, tuesday, 14))
    sms = open_session()
    reply = turn(interaction=sms, text="book tuesday at 2pm")
    assert "already taken" in reply.text and "1:30 PM" in reply.text and "2:30 PM" in reply.text
    reply = turn(interaction=sms, text="2:30 PM then")
    assert Appointment.objects.filter(customer=customer).get().starts_at == local(tenant, tuesday, 14, 30)


def test_outside_hours_and_weekends_are_refused(tenant, customer, open_session):
    reply = turn(interaction=open_session(), text="book tuesday at 8pm")
    assert "outside our booking hours" in reply.text and not Appointment.objects.exists()
    saturday = next_weekday(tenant, 5)
    reply = turn(interaction=open_session(), text=f"book {saturday:%B} {saturday.day} at 10am")
    assert not Appointment.objects.exists()
    AgentSettings.objects.create(tenant=tenant, bookable_hours={"sat": [["09:00", "12:00"]]})
    turn(interaction=open_session(), text=f"book {saturday:%B} {saturday.day} at 10am")
    assert Appointment.objects.get().starts_at == local(tenant, saturday, 10)


def test_reschedule_with_only_a_time_and_cancel(tenant, customer, open_session):
    tuesday = next_weekday(tenant, TUESDAY)
    appointment = appointment_book(tenant=tenant, customer=customer, starts_at=local(tenant, tuesday, 14))
    email = open_session("email")
    ask = turn(interaction=email, text="Can you make it 3 PM?")
    assert "Shall I move it" in ask.text and ask.actions == ["reschedule_appointment"]
    appointment.refresh_from_db()
    assert appointment.version == 1  # nothing moves before the patient says yes
    reply = turn(interaction=email, text="Yes please")
    appointment.refresh_from_db()
    assert appointment.starts_at == local(tenant, tuesday, 15) and appointment.version == 2
    assert "confirm_change" in reply.actions and "3:00 PM" in reply.text
    reply = turn(interaction=open_session("email"), text="Please cancel my appointment")
    appointment.refresh_from_db()
    assert appointment.status == "cancelled" and reply.actions == ["cancel_appointment"]


def test_greeting_mentions_the_upcoming_appointment(tenant, customer, open_session):
    appointment_book(tenant=tenant, customer=customer, starts_at=local(tenant, next_weekday(tenant, TUESDAY), 9))
    assert "Your next appointment is on" in greet(interaction=open_session("chat")).text


def test_handoff_marks_escalated_and_notifies_staff(tenant, customer, open_session):
    sms = open_session()
    reply = turn(interaction=sms, text="I want to talk to a real person please")
    assert reply.actions == ["handoff_to_human"]
    assert Interaction.objects.get(pk=sms.pk).escalated
    notice = StaffNotification.objects.get()
    assert (notice.kind, notice.interaction_id, notice.tenant_id) == ("handoff", sms.pk, tenant.pk)
    turn(interaction=sms, text="a human please")
    assert StaffNotification.objects.count() == 1


def test_callback_request_records_context_and_signals(
    tenant, customer, open_session, django_capture_on_commit_callbacks
):
    from conversations.signals import callback_requested

    seen = []
    callback_requested.connect(lambda sender, **kw: seen.append(kw), weak=False, dispatch_uid="t-cb")
    try:
        sms = open_session()
        turn(interaction=sms, text="I'd like to book for Tuesday")
        with django_capture_on_commit_callbacks(execute=True):
            reply = turn(interaction=sms, text="Could you call me back instead?")
            turn(interaction=sms, text="call me back")
    finally:
        callback_requested.disconnect(dispatch_uid="t-cb")
    request = CallbackRequest.objects.get()
    assert request.phone == "+15551230001" and request.context["pending"]["intent"] == "book"
    assert reply.actions == ["request_callback"]
    assert seen == [{"signal": callback_requested, "interaction_id": sms.pk, "callback_request_id": request.pk}]


def test_identity_check_on_a_shared_phone(tenant, customer, open_session):
    AgentSettings.objects.create(tenant=tenant, identity_check="phone")
    customer.display_name = "Ana Lopez"
    customer.save(update_fields=["display_name"])
    first = open_session()
    turn(interaction=first, text="I'd like to book for Tuesday")  # first contact: nobody to confirm yet
    Interaction.objects.filter(pk=first.pk).update(ended_at=timezone.now())

    second = open_session()
    ask = turn(interaction=second, text="what about 2pm?")
    assert "first name" in ask.text and not Appointment.objects.exists()
    reply = turn(interaction=second, text="It's Ana")
    assert Appointment.objects.get().starts_at.astimezone(tenant.tzinfo).hour == 14
    assert reply.text.startswith("Thanks, Ana.")

    third = open_session("voice")
    Interaction.objects.filter(pk=second.pk).update(ended_at=timezone.now())
    turn(interaction=third, text="hello")
    reply = turn(interaction=third, text="Maria")
    assert "won't use details" in reply.text
    assert "Your next appointment" not in turn(interaction=third, text="hi").text
    turn(interaction=third, text="cancel my appointment")
    assert Appointment.objects.get().status == "booked"


def test_name_is_remembered_across_channels(tenant, customer, open_session):
    turn(interaction=open_session("sms"), text="Hi, my name is Ana")
    assert "Ana" in turn(interaction=open_session("chat"), text="what's my name?").text
