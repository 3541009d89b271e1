"""Redis killed and restarted in the middle of a live ladder: the ladder completes on its own — the backup is
paged once, nobody twice — with the same worker and beat processes (they retry the broker for ever)."""

from __future__ import annotations

import os
import signal

import pytest

from callsphere import embedded
from escalation import services
from escalation.models import Incident, NotificationAttempt
from tests.broker import broker_at
from tests.escalation.conftest import BACKUP, PRIMARY, build_oncall, kill_tree, start_beat
from tests.processes import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def pages(stub, to):
    return len(stub.creates("messages", to=to)), len(stub.creates("calls", to=to))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_redis_restart_mid_ladder_heals_without_a_manual_step(
    esc_tenant, stub_worker, twilio_stub_server, patient_interaction, tmp_path
):
    stub = twilio_stub_server
    data = tmp_path / "broker"
    url = embedded.ensure_redis(data)
    build_oncall(esc_tenant, waits=(4, 60), repeat=0)
    beat = None
    try:
        with broker_at(embedded.celery_broker_url(url)):  # this process queues there too
            worker = stub_worker(REDIS_URL=url)
            beat = start_beat(tmp_path / "beat.log", tmp_path, REDIS_URL=url)
            incident, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="emergency")
            wait_for(lambda: pages(stub, PRIMARY) == (1, 1), timeout=30)
            # Redis dies while the backup's step is waiting (its delayed task sits in the worker and in Redis)
            redis_pid = int((data / "redis" / "redis.pid").read_text())
            os.kill(redis_pid, signal.SIGKILL)
            wait_for(lambda: not _alive(redis_pid), timeout=10)
            wait_for(lambda: "Connection to broker lost" in worker.log_path.read_text(), timeout=60)
            embedded.ensure_redis(data)
            # nobody does anything: the step fires (its task, or the auditor re-driving it) once Redis is back
            wait_for(lambda: pages(stub, BACKUP) == (1, 1), timeout=120)
            wait_for(
                lambda: (
                    not NotificationAttempt.objects.filter(
                        incident=incident, status__in=["pending", "sending"]
                    ).exists()
                ),
                timeout=60,
            )
            assert worker.poll() is None and beat.poll() is None  # the same processes, never restarted
    finally:
        if beat is not None:
            kill_tree(beat)
        embedded.stop_redis(data)
    assert Incident.objects.get(pk=incident.pk).status == "triggered"  # waiting on the backup (60 s)
    assert pages(stub, PRIMARY) == (1, 1) and pages(stub, BACKUP) == (1, 1)  # nothing twice
    assert sorted(
        NotificationAttempt.objects.filter(incident=incident).values_list("step_index", "channel", "status")
    ) == [(0, "sms", "sent"), (0, "voice", "sent"), (1, "sms", "sent"), (1, "voice", "sent")]
