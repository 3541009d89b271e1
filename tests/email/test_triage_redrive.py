"""An accepted email is never left untriaged for good: the ingest survives a broker outage, and the beat redrive
(``email_triage_redrive``, via ``inbound_redrive``) re-queues the triage of an email whose task was lost, or whose
attempt died or failed after claiming it (its lease over: that attempt answers with the holding reply and hands
the conversation to staff). Triaged emails and live claims are left alone, and never crowd a batch.

The redrive runs with an explicit ``now``; the queued task is taken off the real broker (:mod:`tests.broker`)
and run in-process, as a worker would. Emails are ingested with ``at`` in the past so that the task's own clock
(the real one) is past any lease the test set up.
"""

from __future__ import annotations

import base64
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app import tasks as channel_tasks
from channels_app.email import triage
from channels_app.email.ingest import email_ingest
from channels_app.email.tasks import email_triage_task
from channels_app.models import InboundEmail
from conversations.models import ChannelMessage, StaffNotification
from tests.broker import broker_down, take_queued
from tests.email.conftest import plain

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_queue")]

SECRET = "inbound:s3cret-Pa55"
QUESTION = "Can I book a cleaning next week?"


def ingest(body: str = QUESTION, *, ago: timedelta) -> InboundEmail:
    """An accepted email received ``ago`` before now; its triage task is not run (as if it were lost)."""
    result = email_ingest(raw=plain(body=body).as_bytes(), source="webhook", at=timezone.now() - ago)
    assert result.status == "accepted"
    return result.email


def queued_ids() -> list[str]:
    taken = take_queued()
    assert {name for name, _ in taken} <= {email_triage_task.name}, taken
    return [args[0] for _, args in taken]


def replies(inbound: InboundEmail) -> list[ChannelMessage]:
    return list(ChannelMessage.objects.filter(idempotency_key=f"email-reply:{inbound.pk}"))


def test_an_email_accepted_while_the_broker_is_down_is_triaged_by_the_redrive(
    tenant, mailbox, patient, client, settings, django_capture_on_commit_callbacks, caplog
):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    auth = "Basic " + base64.b64encode(SECRET.encode()).decode()
    with broker_down(), caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/email/inbound/", plain(body=QUESTION).as_bytes(), content_type="message/rfc822", HTTP_AUTHORIZATION=auth
        )
    # the sender is told the email is stored (its retry would only be a duplicate); queuing was only logged
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    assert "Error calling" in caplog.text and take_queued() == []
    inbound = InboundEmail.objects.get(pk=response.json()["id"])
    at = inbound.received_at

    assert triage.email_triage_redrive(now=at + timedelta(seconds=30)) == 0  # its task may still come
    assert triage.email_triage_redrive(now=at + timedelta(minutes=2)) == 1
    assert queued_ids() == [str(inbound.pk)]
    email_triage_task(str(inbound.pk))  # what the queued task does
    inbound.refresh_from_db()
    assert inbound.triaged_at and inbound.triage["decision"] == "answered" and inbound.triage["attempt"] == 1
    [reply] = replies(inbound)
    assert reply.body and reply.body != triage.FALLBACK_REPLY.format(clinic=tenant.short_name)

    assert triage.email_triage_redrive(now=at + timedelta(minutes=3)) == 0  # triaged: never re-queued
    assert take_queued() == []


def test_after_an_attempt_died_with_its_claim_the_redrive_leads_to_the_fallback_reply(tenant, mailbox, patient):
    """An attempt claimed the email and then failed (its finish raised, or the hard time limit killed it):
    nothing retries that task. Once its lease is over, the redrive queues an attempt that answers with the
    holding reply and hands the conversation to staff, without running the engine a second time."""
    inbound = ingest(ago=timedelta(minutes=10))
    claimed_at = inbound.received_at + timedelta(seconds=5)
    dead = triage.triage_claim(inbound_id=inbound.pk, now=claimed_at)
    assert isinstance(dead, triage.TriageClaim) and dead.attempt == 1
    lease_end = claimed_at + triage.triage_lease()

    assert triage.email_triage_redrive(now=lease_end - timedelta(seconds=1)) == 0  # it may still be running
    assert take_queued() == []
    assert triage.email_triage_redrive(now=lease_end + timedelta(seconds=1)) == 1
    assert queued_ids() == [str(inbound.pk)]
    email_triage_task(str(inbound.pk))  # what the queued task does (the real clock is past the lease)

    inbound.refresh_from_db()
    assert inbound.triaged_at and (inbound.triage["decision"], inbound.triage["attempt"]) == ("fallback", 2)
    [reply] = replies(inbound)
    assert reply.body == triage.FALLBACK_REPLY.format(clinic=tenant.short_name)
    assert StaffNotification.objects.filter(interaction_id=inbound.interaction_id, kind="handoff").count() == 1
    assert triage.email_triage_redrive(now=lease_end + timedelta(minutes=1)) == 0
    assert take_queued() == []


def test_a_live_claim_is_left_alone(tenant, mailbox, patient):
    inbound = ingest(ago=timedelta(minutes=5))
    now = timezone.now()
    running = triage.triage_claim(inbound_id=inbound.pk, now=now)  # an attempt is thinking right now
    assert isinstance(running, triage.TriageClaim)
    assert triage.email_triage_redrive(now=now) == 0
    assert triage.email_triage_redrive(now=now + triage.triage_lease() - timedelta(seconds=1)) == 0
    assert take_queued() == []
    assert triage.email_triage_redrive(now=now + triage.triage_lease() + timedelta(seconds=1)) == 1  # then died
    assert queued_ids() == [str(inbound.pk)]


def test_triaged_emails_and_live_claims_never_crowd_an_untriaged_one_out_of_the_batch(
    tenant, mailbox, patient, monkeypatch
):
    monkeypatch.setattr(triage, "REDRIVE_BATCH", 2)
    triaged = [ingest(f"Question {n}: do you take new patients?", ago=timedelta(minutes=30 - n)) for n in range(3)]
    for inbound in triaged:  # older than the lost one and more than a batch: first by received_at
        assert triage.email_triage(inbound_id=inbound.pk).decision == "answered"
    claimed = ingest("Is parking free?", ago=timedelta(minutes=20))
    assert isinstance(triage.triage_claim(inbound_id=claimed.pk), triage.TriageClaim)
    lost = ingest(ago=timedelta(minutes=10))

    assert triage.email_triage_redrive() == 1
    assert queued_ids() == [str(lost.pk)]


def test_an_email_older_than_an_hour_is_left_to_staff(tenant, mailbox, patient):
    ingest(ago=timedelta(hours=2))
    assert triage.email_triage_redrive() == 0
    assert take_queued() == []


def test_the_inbound_redrive_beat_task_re_drives_email_triage(tenant, mailbox, patient):
    lost = ingest(ago=timedelta(minutes=2))
    assert channel_tasks.inbound_redrive() == {
        "sms_intake": 0,
        "sms_replies": 0,
        "voicemails": 0,
        "emails": 1,
    }  # its body
    assert queued_ids() == [str(lost.pk)]
