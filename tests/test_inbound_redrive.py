"""Replies to inbound SMS are never silently lost and never composed twice: the webhook survives a broker
outage, the beat redrive re-queues a reply whose task was lost, and a reply is reserved before the engine runs
(its tools act), so a redelivered task or the redrive never runs the engine a second time.

Voicemail recordings are re-driven the same way (tests/voice/test_voicemail.py)."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app import tasks as channel_tasks
from channels_app import twilio_payloads
from channels_app.sms.replies import (
    RESERVATIONS,
    Reservation,
    compose_lease,
    fallback_text,
    sms_compose_reply,
    sms_reply,
    sms_reply_redrive,
    sms_reply_reserve,
)
from conversations.models import CallbackRequest, ChannelMessage, Interaction, StaffNotification
from providers.sms import LocmemSmsBackend
from tests.broker import broker_down, take_queued
from tests.processes import wait_for

pytestmark = pytest.mark.usefixtures("empty_queue")

PATIENT = "+15551230001"
CLINIC = "+15550100001"
CALL_ME = "Please call me back tomorrow"


def receive(tenant, twilio_post, body="Hello", from_=PATIENT) -> ChannelMessage:
    """An inbound SMS through the signed webhook; its reply task is not run (as if it were lost)."""
    params = twilio_payloads.inbound_sms(account_sid=tenant.twilio_account_sid, from_=from_, to=CLINIC, body=body)
    assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200
    return ChannelMessage.objects.get(provider_id=params["MessageSid"])


def reply_of(inbound: ChannelMessage) -> ChannelMessage | None:
    return ChannelMessage.objects.filter(idempotency_key=f"reply:{inbound.provider_id}").first()


@pytest.mark.django_db
def test_webhook_answers_twiml_and_keeps_the_message_when_the_broker_is_down(
    tenant, twilio_post, django_capture_on_commit_callbacks, caplog
):
    params = twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid, from_=PATIENT, to=CLINIC, body="Hi, can I book a cleaning?"
    )
    with broker_down(), caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        response = twilio_post("/twilio/sms/", params, tenant=tenant)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    assert b"<Response" in response.content  # Twilio got its TwiML: it would not have retried a 500 anyway
    assert "Error calling" in caplog.text  # queuing the reply failed, and was only logged
    inbound = ChannelMessage.objects.get(provider_id=params["MessageSid"])
    assert reply_of(inbound) is None and take_queued() == []

    assert sms_reply_redrive(now=inbound.created_at + timedelta(seconds=30)) == 0  # its task may still come
    assert sms_reply_redrive(now=inbound.created_at + timedelta(minutes=2)) == 1
    assert take_queued() == [("channels_app.tasks.sms_reply", [inbound.pk])]
    sms_reply(inbound_id=inbound.pk)  # what the queued task does
    assert [m["to"] for m in LocmemSmsBackend.outbox] == [PATIENT]
    assert reply_of(inbound).status == "queued"


@pytest.mark.django_db
def test_redrive_picks_only_answerable_messages_without_a_reply_inside_the_age_window(tenant, twilio_post):
    now = timezone.now() + timedelta(minutes=2)
    lost = receive(tenant, twilio_post, "Do you take new patients?", from_="+15551230002")
    help_ = receive(tenant, twilio_post, "HELP", from_="+15551230003")  # HELP is answered, so it is re-driven
    stop = receive(tenant, twilio_post, "STOP", from_="+15551230004")  # opt-out: Twilio answers, we never do
    answered = receive(tenant, twilio_post, "Are you open on Saturday?", from_="+15551230005")
    sms_reply(inbound_id=answered.pk)
    young = receive(tenant, twilio_post, "Hello?", from_="+15551230006")
    old = receive(tenant, twilio_post, "Hello again", from_="+15551230007")
    ChannelMessage.objects.filter(pk=young.pk).update(created_at=now - timedelta(seconds=30))
    ChannelMessage.objects.filter(pk=old.pk).update(created_at=now - timedelta(hours=2))  # left to staff
    assert stop.pk and old.pk

    assert sms_reply_redrive(now=now) == 2
    assert sorted(args[0] for _, args in take_queued()) == sorted([lost.pk, help_.pk])


@pytest.mark.django_db
def test_opt_outs_never_crowd_the_redrive_batch(tenant, twilio_post, monkeypatch):
    from channels_app.sms import replies

    monkeypatch.setattr(replies, "REDRIVE_BATCH", 2)
    now = timezone.now() + timedelta(minutes=2)
    for n, body in enumerate(["STOP", " stop. ", "Unsubscribe!"]):  # older than the lost one, never answered
        receive(tenant, twilio_post, body, from_=f"+1555123001{n}")
    lost = receive(tenant, twilio_post, "Do you take new patients?", from_="+15551230020")
    assert sms_reply_redrive(now=now) == 1
    assert [args[0] for _, args in take_queued()] == [lost.pk]


@pytest.mark.django_db
def test_a_duplicate_task_while_the_reply_is_being_composed_does_not_run_the_engine(tenant, twilio_post):
    inbound = receive(tenant, twilio_post, CALL_ME)
    t0 = inbound.created_at
    assert isinstance(sms_reply_reserve(inbound=inbound, now=t0), Reservation)  # attempt 1, still composing

    assert sms_reply(inbound_id=inbound.pk, now=t0 + timedelta(seconds=30)) is None  # a redelivered task
    assert not CallbackRequest.objects.exists()  # the engine (and its request_callback tool) did not run
    assert reply_of(inbound) is None and LocmemSmsBackend.outbox == []
    assert sms_reply_redrive(now=t0 + timedelta(seconds=90)) == 0  # live lease: attempt 1 is not doubled
    assert take_queued() == []


@pytest.mark.django_db
def test_a_reply_whose_worker_died_after_the_engine_ran_gets_the_fallback_not_a_second_engine_run(tenant, twilio_post):
    inbound = receive(tenant, twilio_post, CALL_ME)
    t0 = inbound.created_at
    # Attempt 1: reserves, runs the engine (its tool files a callback request), and dies before the reply row.
    sms_reply_reserve(inbound=inbound, now=t0)
    engine_text = sms_compose_reply(inbound=inbound)
    assert CallbackRequest.objects.count() == 1

    assert sms_reply_redrive(now=t0 + timedelta(seconds=90)) == 0  # the lease outlives the task's time limit
    later = t0 + compose_lease() + timedelta(seconds=1)
    assert sms_reply_redrive(now=later) == 1
    assert take_queued() == [("channels_app.tasks.sms_reply", [inbound.pk])]
    reply = sms_reply(inbound_id=inbound.pk, now=later)

    assert reply.body == fallback_text(inbound) != engine_text  # the engine was not asked again
    assert [m["body"] for m in LocmemSmsBackend.outbox] == [fallback_text(inbound)]
    assert CallbackRequest.objects.count() == 1
    row = Interaction.objects.get(pk=inbound.interaction_id)
    assert [t["role"] for t in row.transcript] == ["customer", "agent"]
    assert not row.workflow.get(RESERVATIONS)  # the reservation went with the reply row
    assert StaffNotification.objects.filter(interaction=row, kind="handoff", handled_at__isnull=True).exists()

    assert sms_reply_redrive(now=later + timedelta(minutes=1)) == 0
    sms_reply(inbound_id=inbound.pk, now=later)  # the queued duplicate
    assert len(LocmemSmsBackend.outbox) == 1


@pytest.mark.django_db
def test_a_slow_attempt_finishing_after_the_fallback_was_written_adds_nothing(tenant, twilio_post):
    """Attempt 1 outlives its lease; attempt 2 sends the fallback. When attempt 1 finally finishes, its text is
    dropped: one reply row, one agent turn, and no reservation left behind (it is removed either way)."""
    from channels_app.sms.replies import _finish

    inbound = receive(tenant, twilio_post, "can u call me back tmrw? after 3 if ok")
    t0 = inbound.created_at
    sms_reply_reserve(inbound=inbound, now=t0)  # attempt 1, still composing
    later = t0 + compose_lease() + timedelta(seconds=1)
    first = sms_reply(inbound_id=inbound.pk, now=later)  # attempt 2 takes over: the fallback
    assert first.body == fallback_text(inbound)
    assert sms_reply_reserve(inbound=inbound, now=later) == first  # the reply row is found, no mark written

    row = Interaction.objects.get(pk=inbound.interaction_id)  # a mark as attempt 1 left it (lease long gone)
    row.workflow = {RESERVATIONS: {inbound.provider_id: {"attempt": 1, "token": "x", "lease_until": "2000-01-01"}}}
    row.save(update_fields=["workflow"])
    late = _finish(
        inbound=ChannelMessage.objects.get(pk=inbound.pk), body="Sure! We’ll call you tomorrow", fallback=False
    )

    assert late.pk == first.pk and late.body == fallback_text(inbound)
    row = Interaction.objects.get(pk=inbound.interaction_id)
    assert [t["role"] for t in row.transcript] == ["customer", "agent"]
    assert not row.workflow.get(RESERVATIONS)
    assert ChannelMessage.objects.filter(idempotency_key=f"reply:{inbound.provider_id}").count() == 1


@pytest.mark.django_db
def test_help_after_a_dead_attempt_is_answered_normally(tenant, twilio_post):
    """START / HELP run no engine, so a second attempt just composes them again."""
    inbound = receive(tenant, twilio_post, "help")
    sms_reply_reserve(inbound=inbound, now=inbound.created_at)
    reply = sms_reply(inbound_id=inbound.pk, now=inbound.created_at + compose_lease() + timedelta(seconds=1))
    assert reply.body == f"{tenant.short_name}: {tenant.sms_help_text}"
    assert not StaffNotification.objects.exists()


def test_inbound_redrive_runs_on_beat():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["inbound-redrive"]
    assert entry["task"] == channel_tasks.inbound_redrive.name and entry["schedule"] <= 30


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_sms_received_while_the_broker_was_down_is_answered_on_a_real_worker(tenant, twilio_post, celery_worker):
    params = twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid,
        from_=PATIENT,
        to=CLINIC,
        body="Hi, I'd like to book an appointment please",
    )
    with broker_down():  # the request's transaction commits; queuing the reply fails (logged)
        assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200
    inbound = ChannelMessage.objects.get(provider_id=params["MessageSid"])
    ChannelMessage.objects.filter(pk=inbound.pk).update(created_at=timezone.now() - timedelta(minutes=2))

    assert channel_tasks.inbound_redrive() == {
        "sms_intake": 0,
        "sms_replies": 1,
        "voicemails": 0,
        "emails": 0,
    }  # the beat task's body
    reply = wait_for(
        lambda: (
            ChannelMessage.objects.filter(idempotency_key=f"reply:{params['MessageSid']}")
            .exclude(status="pending")
            .first()
        ),
        timeout=60,
    )
    assert reply.provider_id.startswith("SM") and reply.recipient == PATIENT
    assert [t["role"] for t in Interaction.objects.get().transcript] == ["customer", "agent"]
