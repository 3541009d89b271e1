"""Callback requests as a patient makes them in chat, and Twilio fetching the callback's answer Url."""

from channels_app import twilio_payloads
from conversations.agent.services import callback_request
from conversations.services import session_open, state_set
from identity.services import customer_resolve
from providers.voice import LocmemVoiceBackend
from tests.voice.phone import CLINIC, path_of

PATIENT = "+15551230009"


TWILIO = "providers.voice.TwilioVoiceBackend"


def chat_request(tenant, reason="Please call me back about booking an appointment for my rash"):
    """A callback asked for in chat by a patient whose phone is verified (its chat code was typed back)."""
    customer = customer_resolve(tenant=tenant, phone=PATIENT, cookie="c-1", verified_kinds=("phone",)).customer
    chat, _ = session_open(tenant=tenant, customer=customer, channel="chat")
    state_set(conversation=chat.conversation, key="name", value="Ana")
    request, _ = callback_request(interaction=chat, phone=PATIENT, reason=reason)
    return request


def answer(twilio_post, tenant, call, answered_by="human"):
    """Twilio fetching the callback's answer Url once AMD has decided (signed)."""
    params = twilio_payloads.callback_answer(
        account_sid=tenant.twilio_account_sid,
        call_sid=call.provider_id,
        from_=CLINIC,
        to=PATIENT,
        answered_by=answered_by,
    )
    return twilio_post(path_of(LocmemVoiceBackend.calls[-1]["url"]), params, tenant=tenant)
