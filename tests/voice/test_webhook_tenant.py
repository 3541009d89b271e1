"""Which tenant a webhook about a call belongs to: our end of the call, never the patient's number.

On a call we placed (a callback: ``Direction=outbound-api``) ``From`` is our number and ``To`` the patient. A
tenant that registered that patient's number as one of its own must not receive the call's webhooks (before,
``To`` was tried first: the request went to that tenant, and failed its signature check or, with a shared
Twilio account, ran in the wrong tenant). When our end is not one of our numbers, the stored ``CallSid`` decides.
"""

from __future__ import annotations

import pytest

from channels_app import twilio_payloads
from channels_app.voice.security import tenant_for_call_webhook
from conversations.models import ChannelMessage, Direction, Interaction
from conversations.services import call_open, interaction_append_turn
from identity.services import customer_resolve
from tests.factories import PhoneNumberFactory
from tests.voice.phone import CLINIC, says

pytestmark = pytest.mark.django_db

PATIENT = "+15551239876"
RELEASED = "+15550109999"  # a number the tenant no longer owns


def place_call(tenant, *, from_: str = CLINIC) -> str:
    """A call we placed to :data:`PATIENT` (as the callback flow opens it), answered; returns its CallSid."""
    sid = twilio_payloads.new_sid("CA")
    customer = customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer
    opened = call_open(
        tenant=tenant,
        customer=customer,
        call_sid=sid,
        sender=from_,
        recipient=PATIENT,
        status="in-progress",
        direction=Direction.OUTBOUND,
    )
    interaction_append_turn(
        interaction=opened.interaction, role="agent", text="Hello, returning your call.", event="callback_intro"
    )
    return sid


@pytest.fixture
def squatter(other_tenant):
    """Another tenant that registered the patient's number as one of its own."""
    PhoneNumberFactory(tenant=other_tenant, number=PATIENT)
    return other_tenant


def test_speech_on_a_call_we_placed_reaches_our_tenant_not_the_owner_of_the_patients_number(
    tenant, squatter, twilio_post, open_all_day
):
    sid = place_call(tenant)
    params = twilio_payloads.gather_speech(
        account_sid=tenant.twilio_account_sid,
        call_sid=sid,
        from_=CLINIC,
        to=PATIENT,
        speech="I'd like to book an appointment",
        direction="outbound-api",
    )
    response = twilio_post("/twilio/voice/gather/?turn=1", params, tenant=tenant)
    assert response.status_code == 200 and says(response.content.decode())
    row = Interaction.objects.get(tenant=tenant)
    assert [t["role"] for t in row.transcript] == ["agent", "customer", "agent"]
    assert tenant_for_call_webhook(params) == tenant


def test_status_of_a_call_we_placed_reaches_our_tenant(tenant, squatter, twilio_post):
    sid = place_call(tenant)
    params = twilio_payloads.call_status(
        account_sid=tenant.twilio_account_sid,
        call_sid=sid,
        from_=CLINIC,
        to=PATIENT,
        status="completed",
        duration=12,
        direction="outbound-api",
    )
    assert twilio_post("/twilio/voice/status/", params, tenant=tenant).status_code == 204
    assert ChannelMessage.objects.get(provider_id=sid).status == "completed"
    assert Interaction.objects.get(tenant=tenant).ended_at is not None


def test_the_owner_of_the_patients_number_cannot_sign_for_our_call(tenant, squatter, twilio_post):
    sid = place_call(tenant)
    params = twilio_payloads.call_status(
        account_sid=squatter.twilio_account_sid,
        call_sid=sid,
        from_=CLINIC,
        to=PATIENT,
        status="completed",
        duration=12,
        direction="outbound-api",
    )
    assert twilio_post("/twilio/voice/status/", params, tenant=squatter).status_code == 403
    assert ChannelMessage.objects.get(provider_id=sid).status == "in-progress"


def test_when_our_end_is_not_one_of_our_numbers_the_stored_call_sid_decides(tenant, squatter, twilio_post):
    sid = place_call(tenant, from_=RELEASED)
    params = twilio_payloads.call_status(
        account_sid=tenant.twilio_account_sid,
        call_sid=sid,
        from_=RELEASED,
        to=PATIENT,
        status="completed",
        duration=3,
        direction="outbound-api",
    )
    assert tenant_for_call_webhook(params) == tenant
    assert twilio_post("/twilio/voice/status/", params, tenant=tenant).status_code == 204
    assert ChannelMessage.objects.get(provider_id=sid).status == "completed"


def test_inbound_call_webhooks_are_found_by_to_never_by_the_callers_number(tenant, squatter):
    params = twilio_payloads.call_status(
        account_sid=tenant.twilio_account_sid, call_sid="CA" + "1" * 32, from_=PATIENT, to=CLINIC, status="completed"
    )
    assert tenant_for_call_webhook(params) == tenant
    unknown = twilio_payloads.call_status(
        account_sid=tenant.twilio_account_sid,
        call_sid="CA" + "2" * 32,
        from_=PATIENT,
        to="+15550100077",
        status="completed",
    )
    assert tenant_for_call_webhook(unknown) is None  # the caller's number (the squatter's) is never consulted
