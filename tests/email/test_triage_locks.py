"""Email triage holds no lock while the LLM thinks, runs the engine at most once, and survives a dead worker.

The real ``openai`` client talks to the local stub (:mod:`tests.stubs.openai_api`); the stub's agent request
(the one carrying ``tools``) blocks until the test releases it. Meanwhile the triage runs in a thread of its
own, and the test — on its own database connection — locks the inbound email's row, its ``call_logs`` row and
its conversation with ``SELECT … FOR UPDATE NOWAIT`` (which fails at once if the triage still held them).
Transactional tests: the triage's thread must see committed rows.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from celery.exceptions import Retry
from django.db import transaction
from django.utils import timezone

from channels_app.email import triage
from channels_app.email.ingest import email_ingest
from channels_app.email.tasks import email_triage_task
from channels_app.models import InboundEmail
from conversations.models import ChannelMessage, Conversation, Interaction, StaffNotification
from tests.email.conftest import plain
from tests.stubs.openai_api import BlockingLLM, in_flight, llm_serving

pytestmark = pytest.mark.django_db(transaction=True)

AGENT_REPLY = "We have a cleaning slot on Tuesday at 10:00. Shall I book it?"


@pytest.fixture
def llm(settings):
    with llm_serving(settings, BlockingLLM(AGENT_REPLY)) as responder:
        yield responder


@pytest.fixture
def quick_llm(settings):
    with llm_serving(settings, BlockingLLM(AGENT_REPLY, block=False)) as responder:
        yield responder


@pytest.fixture
def inbound(tenant, mailbox, patient) -> InboundEmail:
    result = email_ingest(raw=plain(body="Can I book a cleaning next week?").as_bytes(), source="webhook")
    assert result.status == "accepted"
    return result.email


@contextmanager
def triage_in_flight(inbound_id, llm: BlockingLLM):
    """Run :func:`triage.email_triage` from another thread and yield once the engine waits on the LLM. On exit
    the LLM answers; ``result["outcome"]`` then holds what that run returned."""
    result: dict = {}
    with in_flight(
        lambda: triage.email_triage(inbound_id=inbound_id), waiting=llm.agent_called, release=llm.release
    ) as running:
        yield result
    result["outcome"] = running["value"]


def replies(inbound: InboundEmail) -> list[ChannelMessage]:
    return list(ChannelMessage.objects.filter(idempotency_key=f"email-reply:{inbound.pk}"))


def test_no_lock_is_held_on_the_email_or_its_conversation_while_the_engine_waits_for_the_llm(inbound, llm):
    row = Interaction.objects.get(pk=inbound.interaction_id)
    with triage_in_flight(inbound.pk, llm) as result:
        # from this test's own connection: NOWAIT raises at once if the triage still held a lock
        with transaction.atomic():
            InboundEmail.objects.select_for_update(nowait=True).get(pk=inbound.pk)
            Interaction.objects.select_for_update(nowait=True).get(pk=row.pk)
            Conversation.objects.select_for_update(nowait=True).get(pk=row.conversation_id)
        during = InboundEmail.objects.get(pk=inbound.pk)
        # step 1 is committed: the email is claimed, with a lease, and not yet triaged
        claim = during.triage[triage.CLAIM]
        assert claim["attempt"] == 1 and during.triaged_at is None
        # a redelivered task meanwhile does nothing: it neither runs the engine nor answers
        again = triage.email_triage(inbound_id=inbound.pk)
        assert again.decision == "in_progress" and again.lease_until.isoformat() == claim["lease_until"]
        with pytest.raises(Retry):  # the task asks to be retried, after the lease
            email_triage_task(str(inbound.pk))
        assert replies(inbound) == []
    outcome = result["outcome"]
    assert (outcome.decision, outcome.urgency) == ("answered", 1)
    done = InboundEmail.objects.get(pk=inbound.pk)
    assert done.triaged_at and done.triage == {"decision": "answered", "urgency": 1, "attempt": 1}
    [reply] = replies(inbound)
    assert (reply.pk, reply.body, reply.status) == (outcome.reply_id, AGENT_REPLY, "pending")
    assert llm.agent_requests() == 1  # one engine run, although the email was triaged three times
    assert triage.email_triage(inbound_id=inbound.pk).decision == "skipped"


def test_after_a_dead_worker_the_claim_expires_and_the_engine_is_not_run_again(inbound, quick_llm):
    """The worker that claimed the email died (maybe after the engine's tools acted): once its lease is over,
    the next attempt answers with the holding reply and hands the conversation to staff."""
    long_ago = timezone.now() - triage.triage_lease() - timedelta(seconds=1)
    dead = triage.triage_claim(inbound_id=inbound.pk, now=long_ago)
    assert isinstance(dead, triage.TriageClaim) and dead.attempt == 1 and not dead.engine_ran_before
    outcome = triage.email_triage(inbound_id=inbound.pk)
    assert outcome.decision == "fallback"
    assert quick_llm.agent_requests() == 0
    [reply] = replies(inbound)
    assert reply.body == triage.FALLBACK_REPLY.format(clinic=inbound.tenant.short_name)
    assert StaffNotification.objects.filter(interaction_id=inbound.interaction_id, kind="handoff").count() == 1
    done = InboundEmail.objects.get(pk=inbound.pk)
    assert done.triaged_at and done.triage == {"decision": "fallback", "urgency": 1, "attempt": 2}
    email_triage_task(str(inbound.pk))  # a late redelivery: already triaged, nothing to do, no retry
    assert len(replies(inbound)) == 1


def test_an_attempt_taken_over_while_it_ran_drops_its_late_answer(inbound, llm):
    with triage_in_flight(inbound.pk, llm) as result:
        # the running attempt outlives its lease (it cannot in a worker: the lease exceeds the hard time limit)
        row = InboundEmail.objects.get(pk=inbound.pk)
        expired = (timezone.now() - timedelta(seconds=1)).isoformat()
        InboundEmail.objects.filter(pk=inbound.pk).update(
            triage={triage.CLAIM: {**row.triage[triage.CLAIM], "lease_until": expired}}
        )
        taken_over = triage.email_triage(inbound_id=inbound.pk)
        assert taken_over.decision == "fallback"
    assert result["outcome"].decision == "superseded"
    [reply] = replies(inbound)  # the fallback stands; the late engine answer is not sent
    assert reply.pk == taken_over.reply_id and reply.body != AGENT_REPLY
    assert InboundEmail.objects.get(pk=inbound.pk).triage["attempt"] == 2


def test_the_triage_task_is_requeued_when_its_worker_dies():
    assert email_triage_task.acks_late and email_triage_task.reject_on_worker_lost
