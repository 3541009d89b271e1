"""The dead-man's switch end to end: daphne (its watchdog thread), beat and a real escalation worker. Stopping the
worker turns ``/healthz/escalation`` to 503 and the web process texts the admin once; starting it clears both.
The max age is 3 s here (30 s in production) so the test does not wait out the real threshold."""

from __future__ import annotations

import httpx
import pytest

from escalation.models import PipelineHeartbeat, PipelineOutage
from tests import processes
from tests.escalation.conftest import build_oncall, kill_tree, start_beat, worker_env
from tests.escalation.steps import ADMIN_PHONE, make_admin
from tests.processes import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
FAST = {"ESCALATION_HEARTBEAT_MAX_AGE": "3"}


def test_stopping_the_escalation_worker_is_noticed_once_and_clears(
    esc_tenant, stub_worker, twilio_stub_server, tmp_path, django_db_blocker
):
    stub = twilio_stub_server
    PipelineHeartbeat.objects.all().delete()  # rows an earlier test's processes may have left
    PipelineOutage.objects.all().delete()
    build_oncall(esc_tenant)
    make_admin(esc_tenant)
    worker = stub_worker(**FAST)
    beat = start_beat(tmp_path / "beat.log", tmp_path, **FAST)
    wait_for(lambda: PipelineHeartbeat.objects.count() == 2, timeout=60, interval=0.5)
    web, base = processes.start_daphne(
        log_path=tmp_path / "daphne.log", ESCALATION_WATCHDOG_SECONDS="0.5", **worker_env(stub, **FAST)
    )

    def status():
        return httpx.get(f"{base}/healthz/escalation", timeout=10).status_code

    try:
        wait_for(lambda: status() == 200, timeout=60, interval=0.5)
        assert not stub.created("messages")

        kill_tree(worker)
        # nobody polls meanwhile: the web process's watchdog thread alone notices and texts
        wait_for(lambda: stub.created("messages", to=ADMIN_PHONE), timeout=30)
        assert status() == 503
        for _ in range(5):  # every check (the watchdog's and each poll) sees the same open outage
            assert status() == 503
        assert len(stub.created("messages")) == 1 and PipelineOutage.objects.filter(ended_at=None).count() == 1

        stub_worker(**FAST)
        # a loaded machine may see one more stale moment right after the restart: wait until it settles
        wait_for(
            lambda: status() == 200 and not PipelineOutage.objects.filter(ended_at=None).exists(),
            timeout=60,
            interval=0.5,
        )
        assert PipelineOutage.objects.filter(ended_at__isnull=False).exists()
        assert len(stub.created("messages")) == 1
    finally:
        kill_tree(beat)
        if "web" in locals():
            processes.stop(web)
