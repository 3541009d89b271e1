"""A voice turn holds no lock while the LLM thinks, and a replay of a turn still being answered is held.

The real ``openai`` client talks to the local stub (:mod:`tests.stubs.openai_api`); the stub's agent request
(the one carrying ``tools``) blocks until the test releases it. Meanwhile the caller's turn runs in a thread of
its own, and the test — on its own database connection — locks the call's ``call_logs`` row and its conversation
with ``SELECT … FOR UPDATE NOWAIT`` (which fails at once if the turn still held them) and replays the Gather
action. Transactional tests: the turn's thread must see committed rows.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channels_app.voice import agent
from conversations.models import Conversation, Interaction
from conversations.services import interaction_set_workflow
from tests.voice.phone import says
from tests.voice.turns import AGENT_REPLY, WORDS, is_hold, replay, turn_in_flight

pytestmark = pytest.mark.django_db(transaction=True)


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
