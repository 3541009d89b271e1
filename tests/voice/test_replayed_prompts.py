"""Twilio retrying a no-input, voicemail or Record-action request: the same TwiML, and the transcript turn once.

Each of these agent turns carries a ``ref`` (CallSid + route + counter); a replay finds it and appends nothing.
"""

from __future__ import annotations

import pytest

from channels_app import twilio_payloads
from conversations.models import Interaction
from tests.voice.phone import CALLER, CLINIC, path_of

pytestmark = pytest.mark.django_db

RE_SID = "RE" + "e" * 32


def events(role: str = "agent") -> list[str]:
    return [t.get("event") for t in Interaction.objects.get().transcript if t["role"] == role]


def post_twice(phone, path: str, params: dict) -> str:
    first = phone.post(path, params, tenant=phone.tenant)
    again = phone.post(path, params, tenant=phone.tenant)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    return first.content.decode()


def silence_params(phone) -> dict:
    return twilio_payloads.gather_speech(
        account_sid=phone.tenant.twilio_account_sid, call_sid=phone.sid, from_=CALLER, to=CLINIC, speech=""
    )


def test_replayed_no_input_requests_append_each_prompt_once(phone):
    phone.answer()
    post_twice(phone, path_of(phone.last.find("Redirect").text), silence_params(phone))  # n=1: re-prompt
    assert events() == ["greeting", "no_input"]
    post_twice(phone, "/twilio/voice/no-input/?turn=1&n=2", silence_params(phone))  # n=2: voicemail offer
    post_twice(phone, "/twilio/voice/no-input/?turn=1&n=3", silence_params(phone))  # n=3: goodbye
    assert events() == ["greeting", "no_input", "voicemail", "goodbye"]
    refs = [t.get("ref") for t in Interaction.objects.get().transcript[1:]]
    assert refs == [f"{phone.sid}:no-input:1:{n}" for n in (1, 2, 3)]


def test_a_later_silence_of_another_turn_is_still_recorded(phone):
    phone.answer()
    phone.silence()
    phone.say("I'd like to book an appointment")  # turn 1 heard; the next Gather is turn 2
    phone.silence()
    assert events() == ["greeting", "no_input", "reply", "no_input"]


def test_replayed_voicemail_fallback_appends_its_prompt_once(phone, tenant):
    phone.answer()
    params = twilio_payloads.gather_speech(
        account_sid=tenant.twilio_account_sid, call_sid=phone.sid, from_=CALLER, to=CLINIC, speech=""
    )
    document = post_twice(phone, "/twilio/voice/voicemail/", params)
    assert "<Record" in document
    assert events() == ["greeting", "voicemail"]


def test_replayed_record_action_appends_its_goodbye_once(phone, tenant):
    phone.answer()
    phone.say("Can I leave a message please")
    params = twilio_payloads.record_action(
        account_sid=tenant.twilio_account_sid,
        call_sid=phone.sid,
        from_=CALLER,
        to=CLINIC,
        recording_sid=RE_SID,
        duration=7,
    )
    document = post_twice(phone, "/twilio/voice/voicemail/done/", params)
    assert "<Hangup" in document
    assert events() == ["greeting", "voicemail", "goodbye"]
    assert Interaction.objects.get().metadata["ended_by"] == "agent"
