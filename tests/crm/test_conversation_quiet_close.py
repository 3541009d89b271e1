"""Issue 18, timely events: a conversation quiet for the tenant's quiet period (24 h by default, not the 30-day
state TTL) is closed by ``close_idle``; ``conversation.closed`` reaches a webhook endpoint once and the CRM
gets its activity once, however many sweepers run; the patient's next message starts a new conversation that
still remembers what they were doing. The queued tasks are taken off this run's Redis and run in this process;
the webhook receiver and HubSpot are real HTTP servers on loopback."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations.models import Conversation
from conversations.selectors import state_get
from conversations.services import close_idle, conversation_close, interaction_append_turn, session_open, state_set
from conversations.webhooks import tasks as webhook_tasks
from conversations.webhooks.models import WebhookEndpoint, WebhookMessage
from crm import tasks as crm_tasks
from crm.models import CrmDelivery
from enrichment.tasks import enrich_interaction
from tests.broker import take_queued
from tests.crm.records import connect, patient
from tests.webhooks import receiver as rcv

pytestmark = pytest.mark.django_db

WORKER = {
    task.name: task
    for task in (
        enrich_interaction,
        webhook_tasks.webhook_interaction_enriched,
        webhook_tasks.webhook_conversation_closed,
        webhook_tasks.webhook_deliver,
        crm_tasks.crm_deliver,
        crm_tasks.crm_enqueue,
    )
}


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    r = rcv.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def work(capture) -> list[str]:
    """Run what a worker would (enrichment, webhook emits and deliveries, CRM deliveries) until nothing is
    queued; returns the task names run, in order."""
    ran = []
    while batch := [(name, args) for name, args in take_queued() if name in WORKER]:
        for name, args in batch:
            with capture(execute=True):
                WORKER[name](*args)
            ran.append(name)
    return ran


def test_a_quiet_conversation_closes_after_a_day_and_is_sent_once_to_webhooks_and_the_crm(
    tenant, hubspot, receiver, empty_queue, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    WebhookEndpoint.objects.create(tenant=tenant, url=receiver.url, events=["conversation.closed"])
    connect(tenant, "hubspot")
    ines = patient(tenant)
    t0 = timezone.now() - timedelta(hours=30)
    with capture(execute=True):
        sms, _ = session_open(tenant=tenant, customer=ines, channel="sms", at=t0)
        interaction_append_turn(
            interaction=sms, role="customer", text="hi can i move my tuesday appt to thursday afternoon?", at=t0
        )
        state_set(conversation=sms.conversation, key="pending", value={"intent": "reschedule"}, at=t0)
    conversation = sms.conversation

    with capture(execute=True):  # a day minus an hour later: the SMS session is over, the conversation is not
        assert close_idle(now=t0 + timedelta(hours=23)) == {"interactions": 1, "conversations": 0}
    work(capture)
    assert receiver.requests == []
    assert len(hubspot.objects["notes"]) == 1  # the enriched session reached the CRM already

    with capture(execute=True):  # 24 h quiet: closed; a second sweeper (beat + the command) finds nothing
        assert close_idle(now=t0 + timedelta(hours=24, minutes=1)) == {"interactions": 0, "conversations": 1}
        assert close_idle(now=t0 + timedelta(hours=24, minutes=2)) == {"interactions": 0, "conversations": 0}
        out = StringIO()
        call_command("close_idle", stdout=out)
        assert conversation_close(conversation=conversation) is False
    assert out.getvalue().strip() == "closed 0 session(s), 0 conversation(s)"
    work(capture)
    with capture(execute=True):  # a redelivered emit task changes nothing
        assert webhook_tasks.webhook_conversation_closed(str(conversation.pk)) is True
    work(capture)

    [request] = receiver.requests
    body = json.loads(request["body"])
    assert body["type"] == "conversation.closed"
    assert body["data"]["conversation"]["id"] == str(conversation.pk)
    assert [i["id"] for i in body["data"]["interactions"]] == [str(sms.pk)]
    assert WebhookMessage.objects.filter(event_type="conversation.closed").count() == 1
    assert CrmDelivery.objects.get().status == "succeeded"
    assert len(hubspot.objects["contacts"]) == 1 and len(hubspot.objects["notes"]) == 1
    assert len(hubspot.calls("POST", r"/objects/notes$")) == 1
    conversation.refresh_from_db()
    assert conversation.status == "closed"

    # two hours later Inés texts again: a new conversation, which still knows she was rescheduling
    later = t0 + timedelta(hours=26)
    with capture(execute=True):
        again, created = session_open(tenant=tenant, customer=ines, channel="sms", at=later)
    assert created and again.conversation_id != conversation.pk
    assert Conversation.objects.filter(customer=ines, status="open").get() == again.conversation
    assert state_get(conversation=again.conversation, key="pending", now=later) == {"intent": "reschedule"}
    take_queued("escalation")


def test_the_quiet_period_is_the_tenants_and_a_message_in_it_keeps_the_conversation_open(
    tenant, empty_queue, django_capture_on_commit_callbacks
):
    tenant.conversation_quiet_period = timedelta(hours=2)
    tenant.save(update_fields=["conversation_quiet_period"])
    t0 = timezone.now() - timedelta(hours=5)
    with django_capture_on_commit_callbacks(execute=True):
        chat, _ = session_open(tenant=tenant, customer=patient(tenant), channel="chat", at=t0)
        interaction_append_turn(interaction=chat, role="customer", text="what are your hours on saturday", at=t0)
        # the chat session is still open and the patient wrote again 90 minutes later
        interaction_append_turn(
            interaction=chat, role="customer", text="and do you take aetna?", at=t0 + timedelta(minutes=90)
        )

    assert close_idle(now=t0 + timedelta(hours=3))["conversations"] == 0  # 90 min quiet < 2 h
    assert close_idle(now=t0 + timedelta(hours=3, minutes=31))["conversations"] == 1
    take_queued("escalation")


def test_a_message_racing_the_sweeper_opens_a_new_conversation_not_a_session_in_the_closed_one(
    tenant, monkeypatch, empty_queue
):
    from conversations import services

    ines, other = patient(tenant), patient(tenant, name="Rosa Díaz", phone="+13055550199", email="")
    t0 = timezone.now() - timedelta(days=2)
    first, _ = session_open(tenant=tenant, customer=ines, channel="sms", at=t0)
    state_set(conversation=first.conversation, key="name", value="Inés", at=t0)
    rosa, _ = session_open(tenant=tenant, customer=other, channel="sms", at=t0)
    state_set(conversation=rosa.conversation, key="name", value="Rosa", at=t0)
    read_before_close = first.conversation  # another webhook "opened" it; the sweeper closes it before our lock
    assert close_idle(now=t0 + timedelta(days=1, minutes=1))["conversations"] == 2
    real = services._conversation_get_or_create
    calls = []

    def stale_first(**kwargs):
        calls.append(1)
        return (read_before_close, False) if len(calls) == 1 else real(**kwargs)

    monkeypatch.setattr(services, "_conversation_get_or_create", stale_first)
    now = t0 + timedelta(days=1, hours=1)
    again, created = services.session_open(tenant=tenant, customer=ines, channel="sms", at=now)

    assert created and len(calls) == 2
    assert again.conversation.status == "open" and again.conversation_id != read_before_close.pk
    assert state_get(conversation=again.conversation, key="name", now=now) == "Inés"  # hers, not Rosa's
    take_queued("escalation")
