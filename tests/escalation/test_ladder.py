"""The ladder driven step by step in-process (services called directly), providers = the real twilio client
against the local Twilio stub: parallel pages, fences, idempotency, provider faults, fall-through, exhaustion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from escalation import services
from escalation.models import Incident, NotificationAttempt
from identity.models import TenantMembership
from tests.escalation.conftest import BACKUP, PRIMARY
from tests.escalation.steps import deliver, raise_and_fire

pytestmark = pytest.mark.django_db


def send_all(ids, now=None):
    for attempt_id in ids:
        services.attempt_send(attempt_id=attempt_id, now=now)


def test_one_incident_per_interaction(oncall, patient_interaction):
    first, created = services.incident_raise(interaction=patient_interaction, urgency=5, reason="x")
    again, created_again = services.incident_raise(interaction=patient_interaction, urgency=5, reason="x")
    assert created and not created_again and again.pk == first.pk
    patient_interaction.refresh_from_db()
    assert patient_interaction.escalated
    with pytest.raises(IntegrityError), transaction.atomic():  # the database itself refuses a second one
        Incident.objects.create(
            tenant=first.tenant, interaction=patient_interaction, urgency=5, reason="dup", raised_at=timezone.now()
        )


def test_policy_is_frozen_on_the_incident(oncall, patient_interaction):
    incident, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="x")
    oncall["policy"].steps.all().update(wait_seconds=999)
    oncall["policy"].steps.filter(order=1).delete()
    assert [s["wait_seconds"] for s in incident.policy_snapshot["steps"]] == [60, 60]
    now = timezone.now()
    services.incident_run_step(incident_id=incident.pk, fence=incident.fence, now=now)
    incident.refresh_from_db()
    assert incident.next_step_at == now + timedelta(seconds=60)


def test_step_pages_primary_by_call_and_sms(oncall, patient_interaction, twilio_stub):
    incident, outcome = raise_and_fire(patient_interaction)
    assert outcome.fired and len(outcome.attempt_ids) == 2
    deliver(outcome)
    attempts = NotificationAttempt.objects.filter(incident=incident)
    assert {(a.channel, a.to_number, a.status) for a in attempts} == {
        ("sms", PRIMARY, "sent"),
        ("voice", PRIMARY, "sent"),
    }
    assert {a.provider_sid[:2] for a in attempts} == {"SM", "CA"}
    assert len(twilio_stub.created("messages", to=PRIMARY)) == 1 and len(twilio_stub.created("calls", to=PRIMARY)) == 1
    call = twilio_stub.created("calls")[0]
    voice = attempts.get(channel="voice")
    # answered → Twilio fetches the live prompt from our webhook, after answering-machine detection
    assert (call["url"], call["machine_detection"], call["twiml"]) == (
        f"https://clinic.example.com/twilio/escalation/call/{voice.pk}/",
        "Enable",
        "",
    )
    assert call["status_callback"].endswith(f"/twilio/escalation/status/{voice.pk}/")
    # mirrored into the patient's call_logs timeline as outbound rows
    logs = [a.log_interaction for a in attempts]
    assert all(
        r.direction == "outbound" and r.customer_id == patient_interaction.customer_id and r.ended_at for r in logs
    )
    assert {r.metadata["escalation"]["status"] for r in logs} == {"sent"}


def test_redelivered_step_and_send_tasks_do_nothing(oncall, patient_interaction, twilio_stub):
    incident, outcome = raise_and_fire(patient_interaction)
    again = services.incident_run_step(incident_id=incident.pk, fence=1)  # the same task, redelivered
    assert not again.fired
    deliver(outcome)
    send_all(outcome.attempt_ids)  # redelivered sends
    send_all(outcome.attempt_ids, now=timezone.now() + timedelta(minutes=5))
    assert NotificationAttempt.objects.filter(incident=incident).count() == 2
    assert len(twilio_stub.creates("messages")) == 1 and len(twilio_stub.creates("calls")) == 1


def test_step_not_due_yet_does_not_fire(oncall, patient_interaction, twilio_stub):
    incident, _ = raise_and_fire(patient_interaction)
    early = services.incident_run_step(incident_id=incident.pk, fence=incident.fence)
    assert not early.fired and NotificationAttempt.objects.filter(incident=incident).count() == 2


@pytest.mark.parametrize("processed", [False, True], ids=["500-not-processed", "500-after-processing"])
def test_500_then_success_sends_one_message(oncall, patient_interaction, twilio_stub, processed):
    twilio_stub.add_fault("messages", status=500, create=processed)
    incident, outcome = raise_and_fire(patient_interaction)
    deliver(outcome)
    sms = NotificationAttempt.objects.get(incident=incident, channel="sms")
    assert sms.status == "pending" and sms.ambiguous and sms.next_try_at
    send_all([sms.pk], now=sms.next_try_at + timedelta(milliseconds=1))
    sms.refresh_from_db()
    assert sms.status == "sent" and sms.tries == 2
    assert len(twilio_stub.created("messages")) == 1
    assert sms.provider_sid == twilio_stub.created("messages")[0]["sid"]
    # reconciled by a lookup before any resend
    assert [r.action for r in twilio_stub.requests if r.resource == "messages"][:2] == ["create", "list"]


def test_read_timeout_is_reconciled_not_resent(oncall, patient_interaction, twilio_stub, settings):
    settings.TWILIO_TIMEOUT_SECONDS = 1.0
    twilio_stub.add_fault("calls", delay=3.0, create=True)  # the client times out at 1 s; Twilio placed it
    incident, outcome = raise_and_fire(patient_interaction)
    deliver(outcome)
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    assert call.status == "pending" and call.ambiguous
    send_all([call.pk], now=call.next_try_at + timedelta(milliseconds=1))
    call.refresh_from_db()
    assert call.status == "sent" and len(twilio_stub.created("calls")) == 1 == len(twilio_stub.creates("calls"))


def test_429_is_retried_with_backoff_then_given_up(oncall, patient_interaction, twilio_stub):
    twilio_stub.add_fault("messages", status=429, times=None)
    incident, outcome = raise_and_fire(patient_interaction)
    sms_id = NotificationAttempt.objects.get(incident=incident, channel="sms").pk
    deliver(outcome)
    delays = [NotificationAttempt.objects.get(pk=sms_id).next_try_at]
    for _ in range(services.attempts.MAX_TRIES - 1):
        send_all([sms_id], now=timezone.now() + timedelta(seconds=60))
        sms = NotificationAttempt.objects.get(pk=sms_id)
        if sms.next_try_at:
            delays.append(sms.next_try_at)
    assert sms.status == "failed" and sms.tries == services.attempts.MAX_TRIES and not sms.ambiguous
    assert len(twilio_stub.creates("messages")) == services.attempts.MAX_TRIES
    assert len(delays) == services.attempts.MAX_TRIES - 1


def test_permanent_error_falls_through_to_the_backup_at_once(oncall, patient_interaction, twilio_stub):
    twilio_stub.add_fault("messages", status=400, code=21211, to=PRIMARY, times=None)
    twilio_stub.add_fault("calls", status=400, code=21211, to=PRIMARY, times=None)
    incident, outcome = raise_and_fire(patient_interaction)
    deliver(outcome)
    attempts = NotificationAttempt.objects.filter(incident=incident)
    assert {(a.status, a.error_code) for a in attempts} == {("failed", "21211")}
    assert len(twilio_stub.creates("messages")) == 1  # never retried
    incident.refresh_from_db()
    assert incident.next_step_at <= timezone.now()  # the 60 s wait is not waited out
    deliver(services.incident_run_step(incident_id=incident.pk, fence=incident.fence, dispatch=False))
    assert {a.to_number for a in NotificationAttempt.objects.filter(incident=incident, status="sent")} == {BACKUP}


def test_one_failed_channel_does_not_skip_the_wait(oncall, patient_interaction, twilio_stub):
    twilio_stub.add_fault("messages", status=400, code=21614, to=PRIMARY)
    incident, outcome = raise_and_fire(patient_interaction)
    deliver(outcome)
    incident.refresh_from_db()
    fired_at = NotificationAttempt.objects.filter(incident=incident).values_list("created_at", flat=True).first()
    assert incident.next_step_at == fired_at + timedelta(seconds=60)  # the call still rings: the full wait


def test_ack_cancels_pending_and_the_next_step_never_fires(oncall, patient_interaction, twilio_stub):
    twilio_stub.add_fault("messages", status=429)  # the SMS waits for its retry: pending when the ack lands
    incident, outcome = raise_and_fire(patient_interaction)
    deliver(outcome)
    fence = incident.fence
    assert services.incident_acknowledge(incident=incident, responder=oncall["primary"], via="admin")
    assert not services.incident_acknowledge(incident=incident, responder=oncall["backup"], via="admin")
    statuses = dict(NotificationAttempt.objects.filter(incident=incident).values_list("channel", "status"))
    assert statuses == {"sms": "cancelled", "voice": "sent"}
    later = timezone.now() + timedelta(seconds=120)
    send_all(outcome.attempt_ids, now=later)  # the retry task, and redeliveries, arrive after the ack
    assert not services.incident_run_step(incident_id=incident.pk, fence=fence, now=later).fired
    # only the hang-up of the primary's call is re-driven: the task the acknowledgement queues on commit never
    # ran here (this test's transaction does not commit), so the call is still to end and nobody claimed it
    assert services.escalation_audit(now=later) == {"steps": 0, "attempts": 0, "stale": 0, "alerts": 0, "hangups": 1}
    assert len(twilio_stub.creates("messages")) == 1 and len(twilio_stub.creates("calls")) == 1
    assert NotificationAttempt.objects.filter(incident=incident).count() == 2
    incident.refresh_from_db()
    assert (incident.status, incident.acknowledged_by) == ("acknowledged", oncall["primary"])


def test_ack_racing_a_due_step(oncall, patient_interaction, twilio_stub):
    """The step is due and its task is on its way when the ack lands: the task finds a moved fence."""
    incident, outcome = raise_and_fire(patient_interaction)
    deliver(outcome)
    Incident.objects.filter(pk=incident.pk).update(next_step_at=timezone.now())
    due_fence = Incident.objects.get(pk=incident.pk).fence
    services.incident_acknowledge(incident=incident, responder=oncall["primary"], via="sms")
    assert not services.incident_run_step(incident_id=incident.pk, fence=due_fence).fired
    assert not NotificationAttempt.objects.filter(incident=incident, to_number=BACKUP).exists()


def test_exhausted_ladder_alerts_admins_once(oncall, patient_interaction, twilio_stub, django_user_model):
    admin = django_user_model.objects.create_user("boss", "boss@clinic.example", "x")
    TenantMembership.objects.create(user=admin, tenant=oncall["policy"].tenant, role="admin")
    incident, _ = raise_and_fire(patient_interaction)
    now = timezone.now()
    for _ in range(2):
        now += timedelta(seconds=61)
        incident.refresh_from_db()
        services.incident_run_step(incident_id=incident.pk, fence=incident.fence, now=now)
    incident.refresh_from_db()
    assert incident.status == "unacknowledged" and incident.exhausted_at and incident.next_step_at is None
    assert services.incident_alert_admins(incident_id=incident.pk) == 1
    assert services.incident_alert_admins(incident_id=incident.pk) == 0
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["boss@clinic.example"]


def test_repeat_runs_the_ladder_again(esc_tenant, patient_interaction, twilio_stub):
    from tests.escalation.conftest import build_oncall

    build_oncall(esc_tenant, repeat=1)
    incident, _ = raise_and_fire(patient_interaction)
    now = timezone.now()
    for _ in range(3):
        now += timedelta(seconds=61)
        incident.refresh_from_db()
        assert services.incident_run_step(incident_id=incident.pk, fence=incident.fence, now=now).fired
    keys = sorted(
        NotificationAttempt.objects.filter(incident=incident)
        .values_list("repeat", "step_index", "to_number")
        .distinct()
    )
    assert keys == [(0, 0, PRIMARY), (0, 1, BACKUP), (1, 0, PRIMARY), (1, 1, BACKUP)]


def test_auditor_redrives_overdue_steps_and_lost_sends(oncall, patient_interaction, monkeypatch):
    queued = []
    from escalation import tasks

    monkeypatch.setattr(tasks.incident_step, "apply_async", lambda args, **kw: queued.append(("step", args)))
    monkeypatch.setattr(tasks.attempt_send_task, "apply_async", lambda args, **kw: queued.append(("send", args)))
    incident, outcome = raise_and_fire(patient_interaction)
    later = timezone.now() + timedelta(seconds=65)
    services.escalation_audit(now=later)
    assert ("step", (str(incident.pk), incident.fence)) in queued
    assert {args[0] for kind, args in queued if kind == "send"} == set(outcome.attempt_ids)


def test_stale_sending_claim_is_reconciled(oncall, patient_interaction, twilio_stub):
    """A worker died between claiming and recording: the next try looks the message up instead of resending."""
    incident, outcome = raise_and_fire(patient_interaction)
    deliver(outcome)
    sms = NotificationAttempt.objects.get(incident=incident, channel="sms")
    sid = sms.provider_sid
    NotificationAttempt.objects.filter(pk=sms.pk).update(
        status="sending", provider_sid="", claimed_at=timezone.now() - timedelta(minutes=5)
    )
    services.attempt_send(attempt_id=sms.pk)
    sms.refresh_from_db()
    assert (sms.status, sms.provider_sid) == ("sent", sid)
    assert len(twilio_stub.creates("messages")) == 1


def test_retry_left_pending_after_the_ack_is_cancelled_or_reconciled(oncall, patient_interaction, twilio_stub):
    twilio_stub.add_fault("messages", status=429)  # not sent: cancelled by the ack
    twilio_stub.add_fault("calls", status=503, create=True)  # maybe sent: looked up, found, recorded as sent
    incident, outcome = raise_and_fire(patient_interaction)
    deliver(outcome)
    services.incident_acknowledge(incident=incident, responder=None, via="admin")
    sms = NotificationAttempt.objects.get(incident=incident, channel="sms")
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    assert (sms.status, call.status, call.ambiguous) == ("cancelled", "pending", True)
    services.attempt_send(attempt_id=call.pk, now=call.next_try_at + timedelta(seconds=1))
    call.refresh_from_db()
    assert call.status == "sent" and call.provider_sid == twilio_stub.created("calls")[0]["sid"]
    assert len(twilio_stub.creates("calls")) == 1 and len(twilio_stub.creates("messages")) == 1
