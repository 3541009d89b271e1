"""The ladder end to end with real processes: Celery workers on the ``escalation`` queue, celery beat running the
auditor, real PostgreSQL and Redis, and the twilio client talking to the local Twilio stub."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from channels_app import twilio_payloads
from escalation import services
from escalation.models import Incident, NotificationAttempt
from escalation.services.attempts import stale_after
from escalation.tasks import attempt_send_task, incident_step
from tests.escalation.conftest import (
    BACKUP,
    CLINIC_NUMBER,
    PATIENT_PHONE,
    PRIMARY,
    build_oncall,
    kill_tree,
    start_beat,
)
from tests.processes import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def pages(stub, to):
    """Page SMS and page calls placed to ``to`` (not the "acknowledged by …" notice that follows an ack)."""
    texts = [m for m in stub.creates("messages", to=to) if "acknowledged by" not in m.params.get("Body", "")]
    return len(texts), len(stub.creates("calls", to=to))


def run_on(worker, task, *args) -> None:
    """Queue ``task`` and wait until ``worker`` logged it done (its success line names the task id)."""
    task_id = f"test-{uuid.uuid4()}"
    task.apply_async(args, task_id=task_id)
    wait_for(lambda: f"[{task_id}] succeeded" in worker.log_path.read_text(), timeout=30)


def test_urgent_sms_climbs_to_the_backup_until_acknowledged_by_link(
    esc_tenant, stub_worker, twilio_stub_server, twilio_post
):
    stub = twilio_stub_server
    build_oncall(esc_tenant, waits=(2, 60), repeat=1)  # the repeat would page the primary 60 s after the backup
    worker = stub_worker()
    params = twilio_payloads.inbound_sms(
        account_sid=esc_tenant.twilio_account_sid,
        from_=PATIENT_PHONE,
        to=CLINIC_NUMBER,
        body="My father has chest pain and is sweating",
    )
    assert twilio_post("/twilio/sms/", params, tenant=esc_tenant).status_code == 200
    incident = wait_for(lambda: Incident.objects.filter(tenant=esc_tenant).first())
    assert incident.interaction.escalated

    # primary: called and texted at the same moment
    wait_for(lambda: pages(stub, PRIMARY) == (1, 1))
    # no acknowledgement within 2 s: the backup is called and texted (when, exactly: checked below)
    wait_for(lambda: pages(stub, BACKUP) == (1, 1), timeout=15)
    # the worker records each send once Twilio answered: wait for that before acknowledging
    wait_for(
        lambda: NotificationAttempt.objects.filter(incident=incident, step_index=1, status="sent").count() == 2,
        timeout=15,
    )

    # the backup opens the link from their SMS and acknowledges
    body = stub.created("messages", to=BACKUP)[0]["body"]
    path = re.search(r"https://clinic\.example\.com(/a/\S+)$", body).group(1)
    client = Client(enforce_csrf_checks=True)
    page = client.get(path)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.content.decode()).group(1)
    assert client.post(path, {"nonce": nonce}, HTTP_ORIGIN="null").status_code == 200

    incident.refresh_from_db()
    assert (incident.status, incident.acknowledged_by.phone, incident.ack_via) == ("acknowledged", BACKUP, "link")
    # redelivered copies of every task that already ran change nothing (each waited for until the worker ran it)
    for fence in range(1, incident.fence + 1):
        run_on(worker, incident_step, str(incident.pk), fence)
    for attempt_id in NotificationAttempt.objects.filter(incident=incident).values_list("pk", flat=True):
        run_on(worker, attempt_send_task, attempt_id)
    # and nothing fires later: not the repeat when its step falls due, nor anything the auditor would re-drive
    later = timezone.now() + timedelta(hours=1)
    assert not services.incident_run_step(incident_id=incident.pk, fence=incident.fence, now=later).fired
    assert services.escalation_audit(now=later) == {"steps": 0, "attempts": 0, "stale": 0, "alerts": 0, "hangups": 0}
    assert pages(stub, PRIMARY) == (1, 1) and pages(stub, BACKUP) == (1, 1)
    # the primary, paged too, is told once who acknowledged (the notice task runs on the worker)
    notices = wait_for(lambda: [m for m in stub.created("messages", to=PRIMARY) if "acknowledged by" in m["body"]])
    assert [m["body"] for m in notices] == [
        "Sunrise Clinic: the urgent page was acknowledged by Dr. Blake Rivera. No action is needed."
    ]

    # the audit trail: every attempt with its timestamps, and who acknowledged when
    attempts = list(NotificationAttempt.objects.filter(incident=incident).order_by("step_index", "channel"))
    assert [(a.step_index, a.channel, a.to_number, a.status) for a in attempts] == [
        (0, "sms", PRIMARY, "sent"),
        (0, "voice", PRIMARY, "sent"),
        (1, "sms", BACKUP, "sent"),
        (1, "voice", BACKUP, "sent"),
    ]
    for a in attempts:
        assert a.step_due_at <= a.created_at <= a.sent_at <= incident.acknowledged_at and a.provider_sid
    # the backup's step was due exactly the primary's wait after the primary was paged (and fired no earlier)
    assert {a.step_due_at for a in attempts[2:]} == {attempts[0].created_at + timedelta(seconds=2)}
    assert attempts[2].acknowledged_at == incident.acknowledged_at
    assert incident.time_to_ack.total_seconds() > 2


def stale_after_for(timeout: str) -> float:
    """Seconds after which a ``sending`` claim is presumed dead in a process with this Twilio timeout."""
    with override_settings(TWILIO_TIMEOUT_SECONDS=float(timeout)):
        return stale_after().total_seconds()


def test_worker_killed_mid_ladder_completes_without_duplicates(
    esc_tenant, stub_worker, twilio_stub_server, patient_interaction, tmp_path
):
    """SIGKILL while the backup's call request is in flight (and the next step's delayed task is held by the
    dying worker): after a restart the auditor re-drives the lost step and reconciles the in-flight call."""
    stub = twilio_stub_server
    timeout = "10"  # the request must still be in flight when the kill lands: Twilio answers after 30 s
    stale = stale_after_for(timeout)  # only then is the claim presumed dead (beat and workers agree)
    build_oncall(esc_tenant, waits=(1, 1), repeat=0)
    stub.add_fault("calls", to=BACKUP, delay=3 * float(timeout), create=True)  # Twilio places it, answers slowly
    worker = stub_worker(TWILIO_TIMEOUT_SECONDS=timeout)
    beat = start_beat(tmp_path / "beat.log", tmp_path, TWILIO_TIMEOUT_SECONDS=timeout)
    try:
        incident, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="emergency phrase")
        wait_for(lambda: stub.creates("calls", to=BACKUP), timeout=15)
        kill_tree(worker)
        assert NotificationAttempt.objects.get(incident=incident, to_number=BACKUP, channel="voice").status == "sending"

        stub_worker(TWILIO_TIMEOUT_SECONDS=timeout)
        wait_for(lambda: Incident.objects.get(pk=incident.pk).status == "unacknowledged", timeout=30)
        wait_for(
            lambda: (
                not NotificationAttempt.objects.filter(incident=incident, status__in=["pending", "sending"]).exists()
            ),
            timeout=stale + 30,
        )
    finally:
        kill_tree(beat)
    attempts = NotificationAttempt.objects.filter(incident=incident)
    assert sorted((a.step_index, a.channel, a.status) for a in attempts) == [
        (0, "sms", "sent"),
        (0, "voice", "sent"),
        (1, "sms", "sent"),
        (1, "voice", "sent"),
    ]
    assert pages(stub, PRIMARY) == (1, 1) and pages(stub, BACKUP) == (1, 1)  # nothing sent twice
    call = attempts.get(to_number=BACKUP, channel="voice")
    assert call.provider_sid == stub.created("calls", to=BACKUP)[0]["sid"] and call.ambiguous
