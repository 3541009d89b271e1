"""Benchmark: escalation latency against a local stub of Twilio's REST API, with a real Celery worker.

Reports
1. time from "incident raised" (``incident_raise`` returns, i.e. committed and queued) to BOTH provider
   requests (SMS create and call create) having reached the Twilio stub — median, p90, p99, max — and the skew
   between the two requests (they are sent in parallel);
2. how late each timed step fires against its wait: step fire time − (previous step fire time + wait), and
   provider request arrival − step due time.

Uses the test settings (a private Redis and a throw-away database) and the same worker the Procfile runs for
the ``escalation`` queue (prefork, concurrency 2), with persistent database connections (``CONN_MAX_AGE=60``,
as recommended for ``worker-escalation``). Run: ``.venv/bin/python bench/bench_escalation.py``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings_test")

import django  # noqa: E402

django.setup()

from django.test.utils import setup_databases, teardown_databases  # noqa: E402

RAISES = int(os.environ.get("BENCH_RAISES", "60"))
WARMUP = 5
LADDERS = int(os.environ.get("BENCH_LADDERS", "10"))
ISOLATED = int(os.environ.get("BENCH_ISOLATED", "4"))
WAIT_SECONDS = 1


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def summary(name: str, values: list[float], unit: str = "ms") -> str:
    return (
        f"{name}: n={len(values)} median={statistics.median(values):.1f}{unit} p90={pct(values, 90):.1f}{unit} "
        f"p99={pct(values, 99):.1f}{unit} max={max(values):.1f}{unit}"
    )


def wait_until(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.002)
    raise TimeoutError("benchmark condition not met")


def main() -> None:
    from django.db import connection

    from escalation import services
    from escalation.models import Incident, NotificationAttempt
    from tests import processes
    from tests.escalation.conftest import PRIMARY, build_oncall, kill_tree, worker_env
    from tests.factories import InteractionFactory, PhoneNumberFactory, TenantFactory
    from tests.stubs.twilio_api import TwilioStub

    rtt = []
    for _ in range(200):
        t = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        rtt.append((time.perf_counter() - t) * 1000)
    stub = TwilioStub().start()
    tenant = TenantFactory(short_name="Bench Clinic")
    PhoneNumberFactory(tenant=tenant, number="+15550100001")
    oncall = build_oncall(tenant, waits=(60, 60))
    log = Path(tempfile.mkdtemp(prefix="bench-esc-")) / "worker.log"
    worker = processes.start_worker(
        log_path=log,
        queues="escalation",
        concurrency=2,
        **worker_env(stub, LOG_LEVEL="WARNING", CONN_MAX_AGE=os.environ.get("CONN_MAX_AGE", "60")),
    )
    try:
        # 1. raise → both provider requests
        latencies, call_latencies, skews = [], [], []
        for i in range(RAISES + WARMUP):
            interaction = InteractionFactory(conversation__tenant=tenant, conversation__customer__tenant=tenant)
            before = len(stub.requests)
            t_call = time.time()
            incident, _ = services.incident_raise(interaction=interaction, urgency=5, reason="bench")
            t0 = time.time()  # raised: the incident is committed and its first step queued
            wait_until(lambda before=before: len([r for r in stub.requests[before:] if r.action == "create"]) >= 2)
            creates = [r for r in stub.requests[before:] if r.action == "create"]
            assert {r.resource for r in creates} == {"messages", "calls"} and creates[0].params["To"] == PRIMARY
            if i >= WARMUP:
                latencies.append((max(r.at for r in creates) - t0) * 1000)
                call_latencies.append((max(r.at for r in creates) - t_call) * 1000)
                skews.append(abs(creates[0].at - creates[1].at) * 1000)
            services.incident_acknowledge(incident=incident, responder=oncall["primary"], via="admin")

        # 2. step lateness: ladders with 1 s waits (primary, backup, primary, backup, then exhausted) — one at a
        # time, then a burst of LADDERS incidents raised together (2 worker processes share their steps)
        oncall["policy"].steps.update(wait_seconds=WAIT_SECONDS)
        oncall["policy"].repeat_count = 1
        oncall["policy"].save(update_fields=["repeat_count"])

        def run_ladders(count: int, together: bool) -> list:
            raised = []
            for _ in range(count):
                interaction = InteractionFactory(conversation__tenant=tenant, conversation__customer__tenant=tenant)
                raised.append(services.incident_raise(interaction=interaction, urgency=5, reason="bench")[0])
                if not together:
                    wait_until(lambda: Incident.objects.get(pk=raised[-1].pk).status == "unacknowledged", timeout=30)
            wait_until(
                lambda: (
                    Incident.objects.filter(pk__in=[x.pk for x in raised], status="unacknowledged").count() == count
                ),
                timeout=60,
            )
            return raised

        def lateness(ladder) -> tuple[list[float], list[float]]:
            fire_late, request_late = [], []
            for incident in ladder:
                fires = {}
                for a in NotificationAttempt.objects.filter(incident=incident):
                    fires.setdefault((a.repeat, a.step_index), a.created_at)
                    item = stub.messages.get(a.provider_sid) or stub.calls.get(a.provider_sid)
                    if item:
                        request_late.append((item["_received_at"] - a.step_due_at.timestamp()) * 1000)
                ordered = [fires[k] for k in sorted(fires)]
                fire_late += [
                    ((cur - prev).total_seconds() - WAIT_SECONDS) * 1000
                    for prev, cur in zip(ordered, ordered[1:], strict=False)
                ]
            return fire_late, request_late

        isolated = run_ladders(ISOLATED, together=False)
        burst = run_ladders(LADDERS, together=True)
        iso_fire, iso_request = lateness(isolated)
        burst_fire, burst_request = lateness(burst)
        duplicates = (
            NotificationAttempt.objects.filter(incident__in=isolated + burst).count() - (ISOLATED + LADDERS) * 8
        )
    finally:
        kill_tree(worker)
        stub.stop()

    print(
        f"escalation benchmark — Twilio stub, 1 Celery worker (prefork, concurrency 2), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(summary("database round trip (SELECT 1), for scale", rtt))
    print(summary("raised (committed, queued) → both provider requests at the stub", latencies))
    print(summary("  the same, counted from the call to incident_raise", call_latencies))
    print(summary("skew between the SMS and the call request", skews))
    print(summary(f"step fired late vs its {WAIT_SECONDS}s wait, one ladder at a time ({ISOLATED}×3 steps)", iso_fire))
    print(summary("  provider request at the stub − step due, one ladder at a time", iso_request))
    print(summary(f"step fired late vs its wait, {LADDERS} ladders at once ({LADDERS}×3 steps)", burst_fire))
    print(summary("  provider request at the stub − step due, ladders at once", burst_request))
    print(f"attempts beyond one per (step, round, responder, channel): {duplicates}")


if __name__ == "__main__":
    old = setup_databases(verbosity=0, interactive=False, keepdb=False, serialized_aliases=set())
    try:
        main()
    finally:
        from django.db import connections

        connections.close_all()
        teardown_databases(old, verbosity=0)
