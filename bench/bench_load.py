"""Benchmark: the signed SMS webhook under open-loop load, the voice Gather webhook under concurrent calls and the
chat websocket with many visitors, each side by side with a bare ASGI server in the same run.

Starts the production-mode stack on loopback (``DEBUG=0``: the web process as the Procfile runs it, and one
Celery worker answering every message) against a throw-away database and a private Redis, and a bare daphne
serving a 10-line ASGI app. The same open-loop generator (requests sent on a fixed schedule whatever the
answers, fresh MessageSid, ``BENCH_PATIENTS`` patient numbers, Twilio signature) runs against each at each
offered rate in ``BENCH_RATES`` for ``BENCH_SECONDS``. Prints achieved throughput, p50/p99, errors, the ratio
to the bare server, and CPU per request of the web process (and of the whole stack). The webhook only accepts
(``channels_app.sms.intake``); after the last step the bench waits for the niced worker to record and answer every
accepted text (``BENCH_DRAIN_SECONDS``, 600) and prints accepted / recorded / answered / quarantined and how long
the backlog took.

Voice: ``BENCH_VOICE_CALLS`` (20) calls at once, each answered and then taking Gather turns back to back for
``BENCH_SECONDS``; prints turn throughput, p50/p99 and CPU per turn. Chat: ``BENCH_CHAT_VISITORS`` (500)
websockets connected (hello answered), then one message each at the same moment; prints the reply p50/p99 (time
from sending to the agent's stored reply) and CPU per message; then ``BENCH_CHAT_IDLE`` (1000) idle connections
(connected, hello answered) and the web processes' RSS before and while they are held. The bare server answers
the same frames at once (an echo). The stack's chat rate limits are raised for the run (one client IP).

Bounded: loopback only, at most ``BENCH_MAX_REQUESTS`` per step, a 5 s client timeout (30 s for a chat reply).
Asserts nothing about speed. Run: ``.venv/bin/python bench/bench_load.py`` (env: ``BENCH_RATES=20,50,100
BENCH_SECONDS=5 BENCH_VOICE_CALLS=20 BENCH_CHAT_VISITORS=500 BENCH_CHAT_IDLE=1000 BENCH_WEB_PROCESSES=<CPUs>``;
0 skips a part).
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
VOICE_CALLS = int(os.environ.get("BENCH_VOICE_CALLS", "20"))
CHAT_VISITORS = int(os.environ.get("BENCH_CHAT_VISITORS", "500"))
CHAT_IDLE = int(os.environ.get("BENCH_CHAT_IDLE", "1000"))
CHAT_TIMEOUT = 30.0
DRAIN_SECONDS = float(os.environ.get("BENCH_DRAIN_SECONDS", "600"))
ORIGIN = "https://clinic.example.com"
VOICE_LINES = ["Hi, this is Ana, I'd like to book an appointment", "Tuesday please", "What times do you have?"]
# the web process as production runs it: one daphne per CPU (callsphere.web); BENCH_WEB_PROCESSES overrides
WEB_PROCESSES = int(os.environ.get("BENCH_WEB_PROCESSES") or len(os.sched_getaffinity(0)))
CLINIC = "+15550100001"
# the patient-reply worker's niceness, as the Procfile runs it (``WORKER_NICE``): webhooks first, replies after
WORKER_NICE = int(os.environ.get("BENCH_WORKER_NICE", os.environ.get("WORKER_NICE", "10")))

BARE_APP = """
import json


async def app(scope, receive, send):
    if scope["type"] == "websocket":  # the chat protocol's answers, at once
        while True:
            event = await receive()
            if event["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
            elif event["type"] == "websocket.disconnect":
                return
            elif event["type"] == "websocket.receive":
                kind = json.loads(event.get("text") or "{}").get("type")
                frame = {"type": "hello"} if kind == "hello" else {"type": "reply", "seq": 1, "text": "ok"}
                await send({"type": "websocket.send", "text": json.dumps(frame)})
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


def renice(pids: list[int], niceness: int) -> None:
    """Set the niceness of these processes and their children (as ``nice -n`` in the Procfile would)."""
    import psutil

    for pid in pids:
        proc = psutil.Process(pid)
        for p in [proc, *proc.children(recursive=True)]:
            p.nice(niceness)


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


async def voice_calls(url: str, calls: int, seconds: float, make_call) -> dict:
    """``calls`` concurrent calls for ``seconds``: each POSTs the answer webhook, then its Gather turns one after
    another (a caller waits for the TwiML before speaking again), then starts a new call. Gather latencies."""
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=httpx.Limits(max_connections=calls + 5)) as client:

        async def post(path: str, data: dict, headers: dict) -> bool:
            try:
                response = await client.post(url + path, data=data, headers=headers)
                key = str(response.status_code)
            except httpx.TimeoutException:
                key = "timeout"
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            statuses[key] = statuses.get(key, 0) + 1
            return key == "200"

        async def caller(n: int) -> None:
            call = 0
            while time.perf_counter() < deadline:
                answer, turns = make_call(n, call)
                call += 1
                if not await post(*answer):
                    continue
                for turn in turns:
                    started = time.perf_counter()
                    if await post(*turn):
                        latencies.append((time.perf_counter() - started) * 1000)
                    if time.perf_counter() >= deadline:
                        break

        t0 = time.perf_counter()
        await asyncio.gather(*(caller(n) for n in range(calls)))
        elapsed = time.perf_counter() - t0
    ok = len(latencies)
    return {"ok": ok, "rps": ok / elapsed, "p50": pct(latencies, 50), "p99": pct(latencies, 99), "statuses": statuses}


async def chat_visitors(ws_url: str, visitors: int, tag: str) -> dict:
    """Connect ``visitors`` websockets (hello answered), then send one message on each at the same moment and time
    each until its stored reply (``reply`` with a ``seq``). Latencies in ms from sending."""
    import aiohttp

    latencies: list[float] = []
    errors: dict[str, int] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = await _open_chats(http, ws_url, visitors, tag, errors)
        ready = asyncio.Event()

        async def one(i: int, ws) -> None:
            await ready.wait()
            started = time.perf_counter()
            await ws.send_json({"type": "message", "id": f"msg-{tag}-{i:06d}", "text": "I'd like to book for Tuesday"})
            try:
                while True:
                    frame = await ws.receive_json(timeout=CHAT_TIMEOUT)
                    if frame.get("type") == "reply" and frame.get("seq") is not None:
                        latencies.append((time.perf_counter() - started) * 1000)
                        return
                    if frame.get("type") == "error":
                        errors[frame.get("code", "error")] = errors.get(frame.get("code", "error"), 0) + 1
                        return
            except (TimeoutError, TypeError, ValueError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

        tasks = [asyncio.create_task(one(i, ws)) for i, ws in enumerate(sockets)]
        t0 = time.perf_counter()
        ready.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        await asyncio.gather(*(ws.close() for ws in sockets))
    ok = len(latencies)
    return {
        "ok": ok,
        "rps": ok / elapsed,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "statuses": {"reply": ok, **errors},
    }


async def _open_chats(http, ws_url: str, count: int, tag: str, errors: dict) -> list:
    """``count`` chat websockets, each past its hello (at most 50 opening at once); failures counted in ``errors``."""
    import aiohttp

    gate = asyncio.Semaphore(50)

    async def open_one(i: int):
        async with gate:
            try:
                ws = await http.ws_connect(ws_url, origin=ORIGIN, timeout=aiohttp.ClientWSTimeout(ws_close=5))
                await ws.send_json({"type": "hello", "visitor": f"bench{tag}visitor{i:08d}"})
                while (await ws.receive_json(timeout=CHAT_TIMEOUT)).get("type") != "hello":
                    pass
                return ws
            except Exception as exc:  # noqa: BLE001 - a bench counts failures
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return None

    return [ws for ws in await asyncio.gather(*(open_one(i) for i in range(count))) if ws is not None]


async def chat_idle(ws_url: str, count: int, tag: str, pids: list[int]) -> tuple[int, float, float]:
    """Hold ``count`` idle chat connections; returns (connections held, RSS MB of ``pids`` and their children
    before, while held)."""
    import aiohttp

    before = rss_mb(pids)
    errors: dict = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = await _open_chats(http, ws_url, count, tag, errors)
        await asyncio.sleep(2)
        held = rss_mb(pids)
        await asyncio.gather(*(ws.close() for ws in sockets))
    return len(sockets), before, held


def rss_mb(pids: list[int]) -> float:
    """Resident memory (MB) of these processes and their children."""
    import psutil

    total = 0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            total += sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def main() -> None:
    from django.conf import settings
    from twilio.request_validator import RequestValidator

    from channels_app import twilio_payloads
    from tests import processes
    from tests.factories import PhoneNumberFactory, TenantFactory

    old_config = setup_databases(verbosity=0, interactive=False)
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    started: list[subprocess.Popen] = []
    try:
        tenant = TenantFactory(short_name="Load Clinic")
        PhoneNumberFactory(tenant=tenant, number=CLINIC)
        validator = RequestValidator(tenant.twilio_auth_token)
        env = {
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            "SMS_BACKEND": "channels_app.providers.sms.LocmemSmsBackend",
            # every visitor comes from 127.0.0.1: the per-IP and per-clinic chat limits would answer rate_limited
            "CHAT_IP_RATE_LIMIT": "1000000",
            "CHAT_TENANT_RATE_LIMIT": "1000000",
        }
        web, base = processes.start_daphne(log_path=workdir / "web.log", WEB_CONCURRENCY=str(WEB_PROCESSES), **env)
        started.append(web)
        # as the Procfile runs it: persistent connections in the worker
        worker = processes.start_worker(log_path=workdir / "worker.log", purge=True, CONN_MAX_AGE="60", **env)
        started.append(worker)
        renice([worker.pid], WORKER_NICE)
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
        warm = asyncio.run(open_loop(base, 10, 1, sms_request))
        asyncio.run(open_loop(bare_url, 10, 1, sms_request))

        print(
            f"load benchmark — signed SMS webhook, open loop, {PATIENTS} patients, {SECONDS:.0f} s per step, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; DEBUG=0, {WEB_PROCESSES} web processes, "
            f"1 worker (nice {WORKER_NICE})"
        )
        print(
            f"{'offered':>8} | {'server':8} | {'ok/s':>6} {'p50 ms':>8} {'p99 ms':>8} | {'ratio':>6} | "
            f"{'web CPU ms/req':>14} {'stack CPU ms/req':>16} | statuses"
        )
        accepted = warm["statuses"].get("200", 0)
        for rate in RATES:
            bare_result = asyncio.run(open_loop(bare_url, rate, SECONDS, sms_request))
            stack = [web.pid, worker.pid, *postgres_pids()]
            web_cpu0, stack_cpu0 = cpu_seconds([web.pid]), cpu_seconds(stack)
            app_result = asyncio.run(open_loop(base, rate, SECONDS, sms_request))
            accepted += app_result["statuses"].get("200", 0)
            web_cpu = (cpu_seconds([web.pid]) - web_cpu0) * 1000 / max(1, app_result["ok"])
            stack_cpu = (cpu_seconds(stack) - stack_cpu0) * 1000 / max(1, app_result["ok"])
            for name, r in (("bare", bare_result), ("sms", app_result)):
                ratio = r["rps"] / bare_result["rps"] if bare_result["rps"] else float("nan")
                cpu = f"{web_cpu:14.1f} {stack_cpu:16.1f}" if name == "sms" else f"{'':14} {'':16}"
                print(
                    f"{rate:>8} | {name:8} | {r['rps']:6.1f} {r['p50']:8.1f} {r['p99']:8.1f} | {ratio:6.2f} | "
                    f"{cpu} | {r['statuses']}"
                )
        recorded, answered, quarantined, waited = _drained(tenant, accepted)
        deadlocks = (workdir / "web.log").read_text().count("deadlock detected") + (
            workdir / "worker.log"
        ).read_text().count("deadlock detected")
        print(
            f"inbound SMS accepted (200): {accepted}, recorded: {recorded}, answered: {answered}, quarantined: "
            f"{quarantined} (the niced worker drained its backlog in {waited:.0f} s after the last step; at most "
            f"{DRAIN_SECONDS:.0f} s); 'deadlock detected' in web/worker logs: {deadlocks}; logs in {workdir}"
        )
        ws_base, ws_bare = base.replace("http", "ws", 1), bare_url.replace("http", "ws", 1)
        chat_url = f"{ws_base}/ws/chat/?key={tenant.widget_public_key}"
        if VOICE_CALLS:
            voice_step(base, bare_url, web, worker, tenant, validator, settings.PUBLIC_BASE_URL)
        if CHAT_VISITORS:
            print(
                f"chat — {CHAT_VISITORS} visitors connected, one message each at once; reply = the agent's stored reply"
            )
            print(
                f"{'visitors':>8} | {'server':8} | {'msg/s':>6} {'p50 ms':>8} {'p99 ms':>8} | {'web CPU ms/msg':>14} | frames"
            )
            bare_result = asyncio.run(chat_visitors(f"{ws_bare}/", CHAT_VISITORS, "b"))
            web_cpu0 = cpu_seconds([web.pid])
            app_result = asyncio.run(chat_visitors(chat_url, CHAT_VISITORS, "a"))
            web_cpu = (cpu_seconds([web.pid]) - web_cpu0) * 1000 / max(1, app_result["ok"])
            for name, r, cpu in (("bare", bare_result, ""), ("chat", app_result, f"{web_cpu:.1f}")):
                print(
                    f"{CHAT_VISITORS:>8} | {name:8} | {r['rps']:6.1f} {r['p50']:8.1f} {r['p99']:8.1f} | {cpu:>14} | "
                    f"{r['statuses']}"
                )
        if CHAT_IDLE:
            held_bare = asyncio.run(chat_idle(f"{ws_bare}/", CHAT_IDLE, "ib", [bare.pid]))
            held_app = asyncio.run(chat_idle(chat_url, CHAT_IDLE, "ia", [web.pid]))
            for name, (held, before, during) in (("bare", held_bare), ("chat", held_app)):
                print(
                    f"idle chat connections | {name:4} | held {held:5d} | RSS of the web processes {before:6.0f} MB "
                    f"before, {during:6.0f} MB while held"
                )
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


def voice_step(base, bare_url, web, worker, tenant, validator, public_base) -> None:
    """The Gather webhook with ``VOICE_CALLS`` concurrent calls, side by side with the bare server."""
    from channels_app import twilio_payloads

    account = tenant.twilio_account_sid

    def signed(path: str, params: dict) -> tuple[str, dict, dict]:
        return path, params, {"X-Twilio-Signature": validator.compute_signature(public_base + path, params)}

    def make_call(n: int, call: int):
        caller = f"+1555400{n:02d}{call % 100:02d}"
        params = twilio_payloads.inbound_call(account_sid=account, from_=caller, to=CLINIC)
        turns = [
            signed(
                f"/twilio/voice/gather/?turn={turn}",
                twilio_payloads.gather_speech(
                    account_sid=account, call_sid=params["CallSid"], from_=caller, to=CLINIC, speech=line
                ),
            )
            for turn, line in enumerate(VOICE_LINES, start=1)
        ]
        return signed("/twilio/voice/", params), turns

    print(f"voice — {VOICE_CALLS} concurrent calls, Gather turns back to back, {SECONDS:.0f} s")
    print(
        f"{'calls':>8} | {'server':8} | {'turn/s':>6} {'p50 ms':>8} {'p99 ms':>8} | {'ratio':>6} | {'web CPU ms/turn':>15} | statuses"
    )
    bare_result = asyncio.run(voice_calls(bare_url, VOICE_CALLS, SECONDS, make_call))
    web_cpu0 = cpu_seconds([web.pid])
    app_result = asyncio.run(voice_calls(base, VOICE_CALLS, SECONDS, make_call))
    web_cpu = (cpu_seconds([web.pid]) - web_cpu0) * 1000 / max(1, app_result["ok"])
    for name, r, cpu in (("bare", bare_result, ""), ("voice", app_result, f"{web_cpu:.1f}")):
        ratio = r["rps"] / bare_result["rps"] if bare_result["rps"] else float("nan")
        print(
            f"{VOICE_CALLS:>8} | {name:8} | {r['rps']:6.1f} {r['p50']:8.1f} {r['p99']:8.1f} | {ratio:6.2f} | "
            f"{cpu:>15} | {r['statuses']}"
        )


def _drained(tenant, accepted: int) -> tuple[int, int, int, float]:
    """Wait until the worker has recorded and answered what the webhook accepted: no ``InboundSms`` left and a
    reply per recorded text, or nothing new for 15 s, or ``DRAIN_SECONDS``. Returns ``(recorded, answered,
    quarantined, seconds waited)``."""
    from channels_app.models import InboundSms
    from conversations.models import ChannelMessage

    messages = ChannelMessage.objects.filter(tenant=tenant, channel="sms")
    started = time.monotonic()
    deadline, last, still = started + DRAIN_SECONDS, None, 0
    while True:
        recorded = messages.filter(direction="inbound").count()
        answered = messages.filter(direction="outbound").count()
        pending = InboundSms.objects.filter(tenant=tenant, status="pending").count()
        state = (recorded, answered, pending)
        if (pending == 0 and answered >= recorded) or time.monotonic() >= deadline:
            break
        still = still + 1 if state == last else 0
        if still >= 15:  # nothing new for 15 s: the worker is stuck or done
            break
        last = state
        time.sleep(1)
    quarantined = InboundSms.objects.filter(tenant=tenant, status="quarantined").count()
    return recorded, answered, quarantined, time.monotonic() - started


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.post(url + "/", data={"a": "b"}, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
