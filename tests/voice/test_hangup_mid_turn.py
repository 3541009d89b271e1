"""A caller who hangs up while the agent is still answering a turn: the row closes once, after the turn is stored.

The agent's turn runs in a thread of its own (as in :mod:`tests.voice.test_turn_locks`): the real ``openai``
client talks to the local stub, whose completion blocks until the test releases it. Meanwhile the test posts
Twilio's signed ``completed`` status callback. ``interaction_closed`` (what queues enrichment) is observed with
a receiver that reads the row as it was committed at that moment, so the tests see what enrichment would see.
Transactional tests: the turn's thread must see committed rows.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from channels_app.voice import agent
from channels_app.voice.lifecycle import CALL_ENDED_AT, INTERRUPTED_CALL
from conversations.models import Interaction, SessionState
from conversations.services import close_idle, interaction_set_workflow
from conversations.signals import interaction_closed
from tests.stubs.openai_api import BlockingLLM, llm_serving, text
from tests.voice.phone import says
from tests.voice.turns import AGENT_REPLY, is_hold, replay, turn_in_flight

pytestmark = pytest.mark.django_db(transaction=True)

GOODBYE_WORDS = "That's all, bye"


class BlockingUrgencyCheck(BlockingLLM):
    """Stub responder: the urgency check (the request without ``tools``) waits for :meth:`release` — the one LLM
    call of a goodbye turn, which never asks the agent."""

    def __call__(self, body: dict) -> dict:
        if "tools" in body:
            return text(self.agent_reply)
        self.agent_called.set()
        assert self.released.wait(self.wait), "the test never released the urgency check"
        return text(json.dumps(self.scores))


@pytest.fixture
def llm(settings):
    with llm_serving(settings, BlockingLLM(AGENT_REPLY)) as responder:
        yield responder


@pytest.fixture
def slow_urgency_check(settings):
    # the blocked request waits on the test only: no client timeout may fire meanwhile
    settings.VOICE_LLM_TIMEOUT_SECONDS = settings.VOICE_TURN_BUDGET_SECONDS = 120.0
    with llm_serving(settings, BlockingUrgencyCheck(AGENT_REPLY)) as responder:
        yield responder


@pytest.fixture
def closes():
    """Every ``interaction_closed`` sent: ``(interaction_id, [(role, event, text) of the committed transcript])``."""
    seen: list[tuple] = []
    lock = threading.Lock()

    def receiver(sender, *, interaction_id, **kwargs):
        row = Interaction.objects.get(pk=interaction_id)
        with lock:
            seen.append((interaction_id, [(t["role"], t.get("event"), t["text"]) for t in row.transcript]))

    interaction_closed.connect(receiver, weak=False, dispatch_uid="tests.voice.hangup_mid_turn")
    yield seen
    interaction_closed.disconnect(dispatch_uid="tests.voice.hangup_mid_turn")


def interrupted(row: Interaction):
    state = SessionState.objects.filter(conversation=row.conversation_id, key=INTERRUPTED_CALL).first()
    return state.value if state else None


def test_a_hang_up_while_the_engine_thinks_closes_the_row_once_after_the_reply_is_stored(phone, llm, closes):
    phone.answer()
    row = Interaction.objects.get()
    with turn_in_flight(phone.tenant, phone.sid, llm) as result:
        assert phone.status("completed", 17).status_code == 204  # the caller hung up
        during = Interaction.objects.get(pk=row.pk)
        assert during.ended_at is None and closes == []  # not closed under the turn
        assert during.metadata["call_status"] == "completed" and during.metadata["duration_seconds"] == 17
        assert during.metadata[CALL_ENDED_AT]
        assert interrupted(during)["call_sid"] == phone.sid  # set as before: the caller dropped mid-way
    assert says(result["document"]) == [AGENT_REPLY]
    done = Interaction.objects.get(pk=row.pk)
    assert done.ended_at is not None and not done.workflow[agent.IN_PROGRESS]
    # closed once, and enrichment's signal saw the whole turn, the agent's reply last
    [(closed_id, transcript)] = closes
    assert closed_id == row.pk
    assert [(role, event) for role, event, _ in transcript] == [
        ("agent", "greeting"),
        ("customer", None),
        ("agent", "reply"),
    ]
    assert transcript[-1][2] == AGENT_REPLY
    assert interrupted(done)["call_sid"] == phone.sid  # a reply nobody heard: still an interrupted call

    assert phone.status("completed", 17).status_code == 204  # Twilio repeating the callback
    assert len(closes) == 1


def test_a_goodbye_turn_the_caller_hung_up_on_closes_once_and_is_not_an_interrupted_call(
    phone, slow_urgency_check, closes
):
    phone.answer()
    row = Interaction.objects.get()
    with turn_in_flight(phone.tenant, phone.sid, slow_urgency_check, words=GOODBYE_WORDS) as result:
        assert phone.status("completed", 9).status_code == 204
        assert Interaction.objects.get(pk=row.pk).ended_at is None and closes == []
        assert interrupted(row)["call_sid"] == phone.sid  # provisional: the turn may still end the call
    assert says(result["document"]) == [agent.GOODBYE.format(name=phone.tenant.short_name)]
    done = Interaction.objects.get(pk=row.pk)
    assert done.ended_at is not None and done.metadata["ended_by"] == "agent"
    [(closed_id, transcript)] = closes
    assert closed_id == row.pk and transcript[-1][:2] == ("agent", "goodbye")
    assert interrupted(done) is None  # the call ended as intended, as when the status came after the goodbye


def test_a_hang_up_on_a_stale_turn_closes_at_once_and_drops_the_late_answer(phone, llm, closes):
    phone.answer()
    row = Interaction.objects.get()
    with turn_in_flight(phone.tenant, phone.sid, llm) as result:
        marker = Interaction.objects.get(pk=row.pk).workflow[agent.IN_PROGRESS]
        stale = agent.STALE_AFTER_BUDGETS * settings.VOICE_TURN_BUDGET_SECONDS + 1
        long_ago = (timezone.now() - timedelta(seconds=stale)).isoformat()
        interaction_set_workflow(interaction=row, updates={agent.IN_PROGRESS: {**marker, "started_at": long_ago}})
        assert phone.status("completed", 40).status_code == 204
        closed = Interaction.objects.get(pk=row.pk)
        assert closed.ended_at is not None and not closed.workflow[agent.IN_PROGRESS]  # the turn was given up
        assert [c[0] for c in closes] == [row.pk]
    done = Interaction.objects.get(pk=row.pk)
    assert done.transcript == closed.transcript  # the late reply never landed on the closed row
    assert is_hold(result["document"])  # what the late request answers; Twilio is no longer listening
    assert len(closes) == 1


def test_a_stuck_turn_given_up_after_the_hang_up_closes_the_row(phone, llm, closes):
    phone.answer()
    row = Interaction.objects.get()
    with turn_in_flight(phone.tenant, phone.sid, llm) as result:
        assert phone.status("completed", 25).status_code == 204  # deferred: the turn is live
        assert closes == []
        marker = Interaction.objects.get(pk=row.pk).workflow[agent.IN_PROGRESS]
        stale = agent.STALE_AFTER_BUDGETS * settings.VOICE_TURN_BUDGET_SECONDS + 1
        long_ago = (timezone.now() - timedelta(seconds=stale)).isoformat()
        interaction_set_workflow(interaction=row, updates={agent.IN_PROGRESS: {**marker, "started_at": long_ago}})
        assert says(replay(phone, speech="")) == [agent.TURN_LOST]  # a late request gives the turn up
        given_up = Interaction.objects.get(pk=row.pk)
        assert given_up.ended_at is not None
        [(closed_id, transcript)] = closes
        assert closed_id == row.pk and transcript[-1][:2] == ("agent", "turn_lost")
    assert result["document"] == replay(phone, speech="")  # the late answer is dropped, the stored one stands
    assert Interaction.objects.get(pk=row.pk).transcript == given_up.transcript
    assert len(closes) == 1


def test_a_turn_whose_worker_died_after_the_hang_up_is_closed_by_the_idle_sweeper(phone, closes):
    """No thread here: step 1 committed its mark and the worker died before step 3 (no LLM is involved)."""
    phone.answer()
    row = Interaction.objects.get()
    interaction_set_workflow(
        interaction=row,
        updates={agent.IN_PROGRESS: {"turn": 1, "token": "dead-worker", "started_at": timezone.now().isoformat()}},
    )
    assert phone.status("completed", 12).status_code == 204
    assert Interaction.objects.get(pk=row.pk).ended_at is None  # the close waits for a turn that never ends
    assert close_idle(now=timezone.now())["interactions"] == 0  # not idle yet
    later = timezone.now() + phone.tenant.sms_idle_window + timedelta(seconds=1)
    assert close_idle(now=later)["interactions"] == 1
    assert Interaction.objects.get(pk=row.pk).ended_at is not None
    assert [c[0] for c in closes] == [row.pk]
    assert interrupted(row)["call_sid"] == phone.sid  # the caller's next session still knows the call dropped
