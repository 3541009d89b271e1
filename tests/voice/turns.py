"""A voice turn in flight on another thread while the LLM stub holds its answer, and replays of its Gather action."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from contextlib import contextmanager

from django.conf import settings
from django.test import Client
from twilio.request_validator import RequestValidator

from channels_app import twilio_payloads
from tests.stubs.openai_api import BlockingLLM, in_flight
from tests.voice.phone import CALLER, CLINIC, Phone, path_of

AGENT_REPLY = "Sure, which day suits you?"


WORDS = "I'd like to book a cleaning"


def signed_post(client: Client):
    """POST like Twilio with ``client`` (one per thread), signed with the tenant's auth token."""

    def post(path: str, params: dict, *, tenant):
        signature = RequestValidator(tenant.twilio_auth_token).compute_signature(
            settings.PUBLIC_BASE_URL + path, params
        )
        return client.post(path, params, HTTP_X_TWILIO_SIGNATURE=signature)

    return post


@contextmanager
def turn_in_flight(tenant, sid: str, llm: BlockingLLM, words: str = WORDS):
    """Post the caller's ``words`` for turn 1 from another thread and yield once the engine is waiting on the LLM.
    On exit the LLM answers; ``result["status"]`` and ``result["document"]`` then hold what that request got."""
    caller = Phone(signed_post(Client()), tenant, call_sid=sid)

    def work():
        params = twilio_payloads.gather_speech(
            account_sid=tenant.twilio_account_sid, call_sid=sid, from_=CALLER, to=CLINIC, speech=words
        )
        response = caller.post("/twilio/voice/gather/?turn=1", params, tenant=tenant)
        return response.status_code, response.content.decode()

    result: dict = {}
    with in_flight(work, waiting=llm.agent_called, release=llm.release) as running:
        yield result
    result["status"], result["document"] = running["value"]


def replay(phone: Phone, *, speech: str) -> str:
    """Twilio posting the Gather action of turn 1 again (``speech=""``: our hold's ``<Redirect>``, which carries
    no ``SpeechResult``); returns the TwiML answered."""
    params = twilio_payloads.gather_speech(
        account_sid=phone.tenant.twilio_account_sid, call_sid=phone.sid, from_=CALLER, to=CLINIC, speech=speech
    )
    response = phone.post("/twilio/voice/gather/?turn=1", params, tenant=phone.tenant)
    assert response.status_code == 200, response.content
    return response.content.decode()


def is_hold(document: str, turn: int = 1) -> bool:
    """``<Pause length="2"/><Redirect method="POST">…/gather/?turn=N</Redirect>`` and nothing else."""
    root = ET.fromstring(document)
    verbs = [node.tag for node in root]
    pause, redirect = root.find("Pause"), root.find("Redirect")
    return (
        verbs == ["Pause", "Redirect"]
        and pause.get("length") == "2"
        and path_of(redirect.text) == f"/twilio/voice/gather/?turn={turn}"
        and redirect.get("method") == "POST"
    )
