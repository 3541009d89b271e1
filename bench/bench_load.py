"""Benchmark: the signed SMS webhook under open-loop load, side by side with a bare ASGI server in the same run.

Starts the production-mode stack on loopback (``DEBUG=0``: the web process as the Procfile runs it, and one
Celery worker answering every message) against a throw-away database and a private Redis, and a bare daphne
serving a 10-line ASGI app. The same open-loop generator (requests sent on a fixed schedule whatever the
answers, fresh MessageSid, ``BENCH_PATIENTS`` patient numbers, Twilio signature) runs against each at each
offered rate in ``BENCH_RATES`` for ``BENCH_SECONDS``. Prints achieved throughput, p50/p99, errors, the ratio
to the bare server, and CPU per request of the web process (and of the whole stack).

Bounded: loopback only, at most ``BENCH_MAX_REQUESTS`` per step, a 5 s client timeout. Asserts nothing about
speed. Run: ``.venv/bin/python bench/bench_load.py`` (env: ``BENCH_RATES=20,50,100 BENCH_SECONDS=5``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
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

RATES = [int(r) for r in os.environ.get("BENCH_RATES", "20,50,100").split(",") if r]
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
PATIENTS = int(os.environ.get("BENCH_PATIENTS", "200"))
MAX_REQUESTS = int(os.environ.get("BENCH_MAX_REQUESTS", "2000"))
TIMEOUT = 5.0
CLINIC = "+15550100001"

BARE_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/xml")]})
    await send({"type": "http.response.body", "body": b"<?xml version=\\"1.0\\"?><Response/>"})
"""


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes and their children (psutil), 0 for one that is gone."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def postgres_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]


async def open_loop(url: str, rate: int, seconds: float, make_request) -> dict:
    """Send ``rate`` requests a second for ``seconds`` on schedule (not waiting for answers); collect results."""
    import httpx

    count = min(int(rate * seconds), MAX_REQUESTS)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as client:

        async def one(i: int) -> None:
            path, data, headers = make_request(i)
            started = time.perf_counter()
            try:
                response = await client.post(url + path, data=data, headers=headers)
                key = str(response.status_code)
                if response.status_code < 400:
                    latencies.append((time.perf_counter() - started) * 1000)
            except httpx.TimeoutException:
                key = "timeout"
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            statuses[key] = statuses.get(key, 0) + 1

        t0 = time.perf_counter()
        tasks = []
        for i in range(count):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    ok = len(latencies)
    return {
        "sent": count,
        "ok": ok,
        "rps": ok / elapsed,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        **{"statuses": statuses},
    }


def main() -> None:
    from django.conf import settings
    from twilio.request_validator import RequestValidator

    from channels_app import twilio_payloads
    from conversations.models import ChannelMessage
    from tests import processes
    from tests.factories import PhoneNumberFactory, TenantFactory

    old_config = setup_databases(verbosity=0, interactive=False)
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    started: list[subprocess.Popen] = []
    try:
        tenant = TenantFactory(short_name="Load Clinic")
        PhoneNumberFactory(tenant=tenant, number=CLINIC)
        validator = RequestValidator(tenant.twilio_auth_token)
        env = {"DEBUG": "0", "LOG_LEVEL": "WARNING", "SMS_BACKEND": "channels_app.providers.sms.LocmemSmsBackend"}
        web, base = processes.start_daphne(log_path=workdir / "web.log", **env)
        started.append(web)
        worker = processes.start_worker(log_path=workdir / "worker.log", purge=True, **env)
        started.append(worker)
        (workdir / "bare_app.py").write_text(BARE_APP)
        port = processes.free_port()
        bare = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "bare_app:app"],
            cwd=workdir,
            stdout=open(workdir / "bare.log", "w"),
            stderr=subprocess.STDOUT,
        )
        started.append(bare)
        bare_url = f"http://127.0.0.1:{port}"
        processes.wait_for(lambda: _answers(bare_url), timeout=30)

        def sms_request(i: int):
            patient = f"+1555300{i % PATIENTS:04d}"
            params = twilio_payloads.inbound_sms(
                account_sid=tenant.twilio_account_sid, from_=patient, to=CLINIC, body=f"Hi, can I book? ({i})"
            )
            signature = validator.compute_signature(settings.PUBLIC_BASE_URL + "/twilio/sms/", params)
            return "/twilio/sms/", params, {"X-Twilio-Signature": signature}

        # warm both (imports, connections, first queries)
        asyncio.run(open_loop(base, 10, 1, sms_request))
        asyncio.run(open_loop(bare_url, 10, 1, sms_request))

        print(
            f"load benchmark — signed SMS webhook, open loop, {PATIENTS} patients, {SECONDS:.0f} s per step, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; DEBUG=0, 1 web process, 1 worker"
        )
        print(
            f"{'offered':>8} | {'server':8} | {'ok/s':>6} {'p50 ms':>8} {'p99 ms':>8} | {'ratio':>6} | "
            f"{'web CPU ms/req':>14} {'stack CPU ms/req':>16} | statuses"
        )
        for rate in RATES:
            bare_result = asyncio.run(open_loop(bare_url, rate, SECONDS, sms_request))
            stack = [web.pid, worker.pid, *postgres_pids()]
            web_cpu0, stack_cpu0 = cpu_seconds([web.pid]), cpu_seconds(stack)
            app_result = asyncio.run(open_loop(base, rate, SECONDS, sms_request))
            web_cpu = (cpu_seconds([web.pid]) - web_cpu0) * 1000 / max(1, app_result["ok"])
            stack_cpu = (cpu_seconds(stack) - stack_cpu0) * 1000 / max(1, app_result["ok"])
            for name, r in (("bare", bare_result), ("sms", app_result)):
                ratio = r["rps"] / bare_result["rps"] if bare_result["rps"] else float("nan")
                cpu = f"{web_cpu:14.1f} {stack_cpu:16.1f}" if name == "sms" else f"{'':14} {'':16}"
                print(
                    f"{rate:>8} | {name:8} | {r['rps']:6.1f} {r['p50']:8.1f} {r['p99']:8.1f} | {ratio:6.2f} | "
                    f"{cpu} | {r['statuses']}"
                )
        stored = ChannelMessage.objects.filter(tenant=tenant, channel="sms", direction="inbound").count()
        deadlocks = (workdir / "web.log").read_text().count("deadlock detected") + (
            workdir / "worker.log"
        ).read_text().count("deadlock detected")
        print(f"inbound SMS stored: {stored}; 'deadlock detected' in web/worker logs: {deadlocks}; logs in {workdir}")
    finally:
        for proc in reversed(started):
            processes.stop(proc)
        from django.db import connections

        connections.close_all()
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        connections.close_all()
        teardown_databases(old_config, verbosity=0)


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.post(url + "/", data={"a": "b"}, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
