"""Appointment confirmations and chat links are texted only to a verified phone, and mailed only to a verified
address: a number or address merely typed somewhere never receives appointment details or a chat link."""

from __future__ import annotations

from datetime import datetime, time

import pytest
from django.utils import timezone

from channels_app.confirmations import appointment_send_confirmation, chat_link_send
from channels_app.models import EmailMailbox
from conversations.appointments import appointment_book
from conversations.models import ChannelMessage
from conversations.services import session_open
from identity.models import CustomerIdentifier
from identity.services import customer_resolve
from tests.clock import next_weekday

pytestmark = pytest.mark.django_db

TYPED = "+15551230101"  # typed in chat, never proven
PROVEN = "+15551230102"  # an SMS came from it
TYPED_EMAIL = "typed@example.com"
PROVEN_EMAIL = "proven@example.com"


@pytest.fixture(autouse=True)
def mailbox(tenant):
    return EmailMailbox.objects.create(tenant=tenant, address="frontdesk@sunrise.example")


def customer_with(tenant, *, typed: tuple = (), proven: tuple = ()):
    """A chat visitor (cookie ``c-1``) with identifiers ``typed`` (unverified) and ``proven`` (verified), each a
    phone (``+…``) or an email; the typed ones are attached first, so they are the oldest."""
    customer = customer_resolve(tenant=tenant, cookie="c-1").customer
    for value, kinds in [*((v, ()) for v in typed), *((v, ("phone", "email")) for v in proven)]:
        key = "email" if "@" in value else "phone"
        assert customer_resolve(tenant=tenant, cookie="c-1", verified_kinds=kinds, **{key: value}).customer == customer
    return customer


def book(tenant, customer, via="chat"):
    chat, _ = session_open(tenant=tenant, customer=customer, channel="chat")
    day = next_weekday(tenant, 2)
    return appointment_book(
        tenant=tenant,
        customer=customer,
        conversation=chat.conversation,
        booked_via=via,
        starts_at=datetime.combine(day, time(10, 0), tenant.tzinfo),
    )


def confirm(appointment):
    return appointment_send_confirmation(appointment_id=appointment.pk, change="booked", version=appointment.version)


def outbound(channel: str) -> list[str]:
    rows = ChannelMessage.objects.filter(channel=channel, direction="outbound")
    return list(rows.values_list("recipient", flat=True))


def test_a_typed_phone_gets_no_confirmation_but_a_verified_email_does(tenant):
    customer = customer_with(tenant, typed=(TYPED,), proven=(PROVEN_EMAIL,))
    assert confirm(book(tenant, customer, via="sms")) == "email"
    assert outbound("sms") == []
    assert outbound("email") == [PROVEN_EMAIL]


def test_the_verified_phone_is_texted_even_when_a_typed_one_is_older(tenant):
    customer = customer_with(tenant, typed=(TYPED,), proven=(PROVEN,))
    assert confirm(book(tenant, customer, via="sms")) == "sms"
    assert outbound("sms") == [PROVEN]


def test_nothing_typed_is_ever_confirmed_to(tenant):
    customer = customer_with(tenant, typed=(TYPED, TYPED_EMAIL))
    assert confirm(book(tenant, customer)) is None
    assert outbound("sms") == [] and outbound("email") == []


def test_an_opted_out_verified_phone_is_not_texted(tenant):
    customer = customer_with(tenant, proven=(PROVEN, PROVEN_EMAIL))
    CustomerIdentifier.objects.filter(value=PROVEN).update(sms_opted_out_at=timezone.now())
    assert confirm(book(tenant, customer, via="sms")) == "email"
    assert outbound("sms") == [] and outbound("email") == [PROVEN_EMAIL]


def test_a_chat_link_is_texted_only_to_a_verified_phone(tenant):
    typed_only = customer_with(tenant, typed=(TYPED,))
    chat, _ = session_open(tenant=tenant, customer=typed_only, channel="chat")
    assert chat_link_send(interaction_id=chat.pk, ref="1") is False
    assert outbound("sms") == []

    customer_resolve(tenant=tenant, cookie="c-1", phone=PROVEN, verified_kinds=("phone",))
    assert chat_link_send(interaction_id=chat.pk, ref="2") is True
    assert outbound("sms") == [PROVEN]
