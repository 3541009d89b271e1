"""The agent texts or calls only a verified phone: a number merely typed somewhere is never used."""

from __future__ import annotations

import pytest

from channels_app import twilio_payloads
from conversations.agent.engine import turn
from conversations.agent.session import session_for
from conversations.agent.tools import call_tool
from conversations.models import CallbackRequest
from conversations.services import session_open
from conversations.signals import channel_switch_requested
from identity.models import CustomerIdentifier
from identity.services import customer_resolve

pytestmark = pytest.mark.django_db
TYPED = "+15551230077"


@pytest.fixture
def typed_only(tenant):
    """A chat visitor whose only phone was typed in chat and never proven (the pre-verification habit)."""
    customer = customer_resolve(tenant=tenant, cookie="c" * 32, phone=TYPED).customer
    assert not CustomerIdentifier.objects.get(value=TYPED).verified
    return customer


def open_(tenant, customer, channel):
    interaction, _ = session_open(tenant=tenant, customer=customer, channel=channel)
    return interaction


def test_no_callback_to_an_unverified_number_and_chat_offers_the_code(tenant, typed_only):
    chat = open_(tenant, typed_only, "chat")
    reply = turn(interaction=chat, text="please call me back")
    assert reply.actions == ["request_callback"] and not CallbackRequest.objects.exists()
    assert "confirmed" in reply.text and "Type your mobile number here" in reply.text and "code" in reply.text
    result = call_tool(session_for(interaction=chat), "request_callback", {"reason": "call me"})
    assert not result.ok and result.data == {"error": "no_verified_phone"}

    CustomerIdentifier.objects.filter(value=TYPED).update(verified=True)  # e.g. its chat code was typed back
    turn(interaction=chat, text="please call me back")
    assert CallbackRequest.objects.get().phone == TYPED


def test_other_channels_ask_for_the_number_to_get_in_touch_itself(tenant, typed_only):
    result = call_tool(
        session_for(interaction=open_(tenant, typed_only, "email")), "request_callback", {"reason": "call me"}
    )
    assert not result.ok and "call or text us from that phone" in result.say
    assert not CallbackRequest.objects.exists()


def test_callback_uses_the_verified_number_not_an_older_typed_one(tenant, customer, open_session):
    CustomerIdentifier.objects.create(tenant=tenant, customer=customer, kind="phone", value=TYPED)
    CustomerIdentifier.objects.filter(value=TYPED).update(created_at="2000-01-01T00:00:00Z")  # the oldest phone
    call_tool(session_for(interaction=open_session("chat")), "request_callback", {"reason": "call me"})
    assert CallbackRequest.objects.get().phone == "+15551230001"


def test_no_chat_link_texted_to_an_unverified_number(tenant, typed_only, django_capture_on_commit_callbacks):
    seen = []
    channel_switch_requested.connect(lambda sender, **kw: seen.append(kw), weak=False, dispatch_uid="t-link")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = call_tool(session_for(interaction=open_(tenant, typed_only, "voice")), "send_chat_link")
    finally:
        channel_switch_requested.disconnect(dispatch_uid="t-link")
    assert not result.ok and result.data == {"error": "no_verified_phone"} and seen == []


def test_a_phone_that_texted_in_counts_as_verified(tenant, typed_only, twilio_post, django_capture_on_commit_callbacks):
    params = twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid, from_=TYPED, to="+15550100001", body="hi"
    )
    with django_capture_on_commit_callbacks():  # the SMS reply is not needed here
        assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200
    assert CustomerIdentifier.objects.get(value=TYPED).verified  # the carrier vouches for From
    seen = []
    channel_switch_requested.connect(lambda sender, **kw: seen.append(kw), weak=False, dispatch_uid="t-link")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = call_tool(session_for(interaction=open_(tenant, typed_only, "voice")), "send_chat_link")
    finally:
        channel_switch_requested.disconnect(dispatch_uid="t-link")
    assert result.ok and len(seen) == 1
