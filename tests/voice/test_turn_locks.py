"""A voice turn holds no lock while the LLM thinks, and a replay of a turn still being answered is held.

The real ``openai`` client talks to the local stub (:mod:`tests.stubs.openai_api`); the stub's agent request
(the one carrying ``tools``) blocks until the test releases it. Meanwhile the caller's turn runs in a thread of
its own, and the test — on its own database connection — locks the call's ``call_logs`` row and its conversation
with ``SELECT … FOR UPDATE NOWAIT`` (which fails at once if the turn still held them) and replays the Gather
action. Transactional tests: the turn's thread must see committed rows.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.utils import timezone
from twilio.request_validator import RequestValidator

from channels_app import twilio_payloads
from channels_app.voice import agent
from conversations.models import Conversation, Interaction
from conversations.services import interaction_set_workflow
from tests.stubs.openai_api import BlockingLLM, in_flight, llm_serving
from tests.voice.conftest import CALLER, CLINIC, Phone, path_of, says

pytestmark = pytest.mark.django_db(transaction=True)

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


@pytest.fixture
def llm(settings):
    with llm_serving(settings, BlockingLLM(AGENT_REPLY)) as responder:
        yield responder


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


def test_no_lock_is_held_on_the_call_or_its_conversation_while_the_engine_waits_for_the_llm(phone, llm):
    phone.answer()
    row = Interaction.objects.get()
    with turn_in_flight(phone.tenant, phone.sid, llm) as result:
        # from this test's own connection: NOWAIT raises at once if the turn's request still held a lock
        with transaction.atomic():
            Interaction.objects.select_for_update(nowait=True).get(pk=row.pk)
            Conversation.objects.select_for_update(nowait=True).get(pk=row.conversation_id)
        during = Interaction.objects.get(pk=row.pk)
        # step 1 is committed: the caller's words are stored and the turn is marked in progress
        assert [(t["role"], t["text"]) for t in during.transcript][-1] == ("customer", WORDS)
        assert during.workflow[agent.IN_PROGRESS]["turn"] == 1
    assert result["status"] == 200 and says(result["document"]) == [AGENT_REPLY]
    done = Interaction.objects.get(pk=row.pk)
    assert [(t["role"], t.get("event")) for t in done.transcript] == [
        ("agent", "greeting"),
        ("customer", None),
        ("agent", "reply"),
    ]
    assert done.workflow["turns_heard"] == 1 and not done.workflow[agent.IN_PROGRESS]
    # the urgency check went out before the agent's completion, and neither waited on a lock
    assert ["tools" in r["json"] for r in llm.server.requests] == [False, True]


def test_a_replay_while_the_turn_is_answered_is_held_then_gets_the_stored_reply(phone, llm):
    phone.answer()
    with turn_in_flight(phone.tenant, phone.sid, llm) as result:
        assert is_hold(replay(phone, speech=WORDS))  # Twilio retrying the Gather action
        assert is_hold(replay(phone, speech=""))  # our own <Redirect> coming back, still in progress
    assert says(result["document"]) == [AGENT_REPLY]
    after = replay(phone, speech="")  # the <Redirect> once the turn is answered: the stored reply
    assert after == result["document"]
    row = Interaction.objects.get()
    assert [t["role"] for t in row.transcript] == ["agent", "customer", "agent"]  # one engine turn, one reply
    assert sum("tools" in r["json"] for r in llm.server.requests) == 1


def test_a_turn_in_progress_for_too_long_is_given_up_and_its_late_answer_dropped(phone, llm):
    phone.answer()
    row = Interaction.objects.get()
    with turn_in_flight(phone.tenant, phone.sid, llm) as result:
        marker = Interaction.objects.get(pk=row.pk).workflow[agent.IN_PROGRESS]
        stale = agent.STALE_AFTER_BUDGETS * settings.VOICE_TURN_BUDGET_SECONDS + 1
        long_ago = (timezone.now() - timedelta(seconds=stale)).isoformat()
        interaction_set_workflow(interaction=row, updates={agent.IN_PROGRESS: {**marker, "started_at": long_ago}})
        given_up = replay(phone, speech=WORDS)
    assert says(given_up) == [agent.TURN_LOST]
    assert "/twilio/voice/gather/?turn=2" in given_up  # the caller is asked again, as turn 2
    assert result["document"] == given_up  # the late request answers what was stored, not its own reply
    done = Interaction.objects.get(pk=row.pk)
    assert [(t["role"], t.get("event")) for t in done.transcript] == [
        ("agent", "greeting"),
        ("customer", None),
        ("agent", "turn_lost"),
    ]
    assert done.workflow["turns_heard"] == 1 and not done.workflow[agent.IN_PROGRESS]
