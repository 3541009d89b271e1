"""Fixtures for escalation: an on-call setup, a fixture patient, the Twilio stub, a worker that uses it."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from escalation import services, tasks
from escalation.models import (
    AckToken,
    EscalationPolicy,
    EscalationSettings,
    EscalationStep,
    Schedule,
    ScheduleMember,
)
from tests import processes
from tests.factories import (
    CustomerFactory,
    IdentifierFactory,
    InteractionFactory,
    PhoneNumberFactory,
    ResponderFactory,
    TenantFactory,
)
from tests.stubs.twilio_api import TwilioStub

CLINIC_NUMBER = "+15550100001"
PRIMARY = "+15557770101"
BACKUP = "+15557770102"
PATIENT_PHONE = "+15551230001"
PATIENT_NAME = "Margaret Thornton"
PATIENT_DOB = "1950-03-14"
SYMPTOM = "crushing chest pain"


def build_oncall(tenant, *, waits=(60, 60), repeat: int = 0, always: bool = True) -> dict:
    """Settings, a primary and a backup responder in a weekly rotation, a two-step policy (primary, backup)."""
    primary = ResponderFactory(tenant=tenant, name="Dr. Avery Chen", phone=PRIMARY)
    backup = ResponderFactory(tenant=tenant, name="Dr. Blake Rivera", phone=BACKUP, timezone="Europe/London")
    # shift 0 started yesterday (tenant time) and lasts a year: primary holds position 0, backup position 1
    start = (dt.datetime.now(tenant.tzinfo) - dt.timedelta(days=1)).date()
    schedule = Schedule.objects.create(
        tenant=tenant, name="Clinicians", rotation_start=start, rotation_days=365, handoff_time=dt.time(0, 0)
    )
    ScheduleMember.objects.create(schedule=schedule, responder=primary, position=0)
    ScheduleMember.objects.create(schedule=schedule, responder=backup, position=1)
    policy = EscalationPolicy.objects.create(tenant=tenant, name="After hours", repeat_count=repeat)
    EscalationStep.objects.create(
        policy=policy, order=0, target="schedule_primary", schedule=schedule, wait_seconds=waits[0]
    )
    EscalationStep.objects.create(
        policy=policy, order=1, target="schedule_backup", schedule=schedule, wait_seconds=waits[1]
    )
    config = EscalationSettings.objects.create(
        tenant=tenant, default_policy=policy, escalate_in_business_hours=always, callback_number=CLINIC_NUMBER
    )
    return {"primary": primary, "backup": backup, "schedule": schedule, "policy": policy, "config": config}


@pytest.fixture
def esc_tenant(db):
    tenant = TenantFactory(short_name="Sunrise Clinic")
    PhoneNumberFactory(tenant=tenant, number=CLINIC_NUMBER)
    return tenant


@pytest.fixture
def oncall(esc_tenant):
    return build_oncall(esc_tenant)


@pytest.fixture
def patient_interaction(esc_tenant):
    """An inbound SMS interaction of a fixture patient whose name, DOB and symptom must never leave."""
    customer = CustomerFactory(tenant=esc_tenant, display_name=PATIENT_NAME)
    IdentifierFactory(customer=customer, tenant=esc_tenant, kind="phone", value=PATIENT_PHONE)
    return InteractionFactory(
        conversation__customer=customer,
        conversation__tenant=esc_tenant,
        customer=customer,
        tenant=esc_tenant,
        transcript=[
            {
                "role": "customer",
                "text": f"I'm {PATIENT_NAME}, born {PATIENT_DOB}, {SYMPTOM}",
                "at": "2026-01-01T02:00:00+00:00",
            }
        ],
        metadata={"date_of_birth": PATIENT_DOB},
    )


@pytest.fixture(scope="session")
def twilio_stub_server():
    with TwilioStub() as stub:
        yield stub


@pytest.fixture
def twilio_stub(twilio_stub_server, settings):
    """The stub, reset, with this process's providers pointed at it (the real twilio client runs).

    The client timeout is 5 s, well above what a loaded machine needs for a loopback answer; a test of the
    read timeout lowers it itself (below its fault's ``delay``)."""
    twilio_stub_server.reset()
    settings.SMS_BACKEND = "providers.sms.TwilioSmsBackend"
    settings.VOICE_BACKEND = "providers.voice.TwilioVoiceBackend"
    settings.TWILIO_API_BASE = twilio_stub_server.base_url
    settings.TWILIO_TIMEOUT_SECONDS = 5.0
    yield twilio_stub_server
    twilio_stub_server.reset()


def worker_env(stub: TwilioStub, **extra: str) -> dict[str, str]:
    return {
        "SMS_BACKEND": "providers.sms.TwilioSmsBackend",
        "VOICE_BACKEND": "providers.voice.TwilioVoiceBackend",
        "TWILIO_API_BASE": stub.base_url,
        "TWILIO_TIMEOUT_SECONDS": "1.5",
        **extra,
    }


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a worker and its pool children (found by parent pid), as a crash would."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(10)


def start_beat(log_path: Path, tmp_dir: Path, **env: str) -> subprocess.Popen:
    """``celery beat`` with a file scheduler (the auditor every second) against the test database."""
    log = open(log_path, "w")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "callsphere",
            "beat",
            "-l",
            "info",
            "-S",
            "celery.beat:PersistentScheduler",
            "-s",
            str(tmp_dir / "beat-schedule"),
        ],
        cwd=processes.ROOT,
        env=processes.process_env(ESCALATION_AUDIT_SECONDS="1", **env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def stub_worker(django_db_setup, django_db_blocker, tmp_path_factory, twilio_stub_server):
    """Start/stop real Celery workers (escalation queue) whose providers talk to the Twilio stub.

    The first worker of a test starts on an emptied queue (tasks of earlier tests must not run); a restart
    keeps what the test queued meanwhile. Each process has ``log_path``."""
    started: list[subprocess.Popen] = []
    twilio_stub_server.reset()

    def start(**extra: str) -> subprocess.Popen:
        with django_db_blocker.unblock():
            proc = processes.start_worker(
                log_path=tmp_path_factory.mktemp("worker") / "worker.log",
                queues="escalation",
                concurrency=2,
                purge=not started,
                **worker_env(twilio_stub_server, **extra),
            )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            kill_tree(proc)  # the test is over; a warm shutdown would only cost seconds
    twilio_stub_server.reset()


@pytest.fixture
def paged(oncall, patient_interaction):
    incident, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="x")
    outcome = services.incident_run_step(incident_id=incident.pk, fence=incident.fence, dispatch=False)
    for item in outcome.outbound:
        services.attempt_deliver(outbound=item)
    incident.refresh_from_db()
    token = AckToken.objects.get(incident=incident)
    return incident, token


@pytest.fixture
def queued(monkeypatch):
    """``incident_end_calls_task.delay`` calls made on commit (argument tuples); :func:`run` executes them."""
    calls: list[tuple] = []
    monkeypatch.setattr(tasks.incident_end_calls_task, "delay", lambda *args: calls.append(args))
    return calls


@pytest.fixture
def foreign_incident(db):
    other = TenantFactory()
    PhoneNumberFactory(tenant=other, number="+15550100077")
    build_oncall(other)
    interaction = InteractionFactory(conversation__tenant=other, conversation__customer__tenant=other)
    incident, _ = services.incident_raise(interaction=interaction, urgency=5, reason="x")
    services.incident_run_step(incident_id=incident.pk, fence=incident.fence)
    return incident
