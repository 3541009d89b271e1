"""Profile: SQL statements and CPU per hot path, through the real code paths on the embedded database.

Paths (each run by a fresh patient, so every iteration does the same work):
- ``sms webhook (first)`` / ``sms webhook (next)``: a signed ``POST /twilio/sms/`` (Django test client) for the
  patient's first and second text, with what runs on commit (escalation screening, the inbox mark); the reply
  task is not queued (the broker is not what is measured) but run next, as the worker would:
- ``sms reply task``: :func:`channels_app.sms.replies.sms_reply` (engine, reply row, delivery to the locmem
  SMS backend) for each of those texts;
- ``voice answer`` / ``voice turn``: ``POST /twilio/voice/`` and one ``/twilio/voice/gather/`` turn (local agent);
- ``chat message``: :func:`channels_app.chat.services.chat_message` (what the websocket consumer runs), the
  visitor's second message.

For each path it prints the statements per iteration (as the database sees them, transactions included: no
test-transaction savepoints), the CPU milliseconds of this Python process (``time.process_time``) and of the
PostgreSQL backend serving it (``/proc/<pid>/stat``, 10 ms ticks, so only the mean over many iterations
means anything), and the wall time, as median and p90 over ``BENCH_ITER`` iterations (default 40) after a
warm-up. Statements are counted in a separate pass (capturing them costs CPU). The machine may be shared:
run it several times and compare medians. Prints numbers, asserts nothing.

Run: ``.venv/bin/python bench/profile_hot_paths.py`` (test settings: a throw-away database on the embedded
PostgreSQL, a private Redis).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings_test")

import django  # noqa: E402

django.setup()

from django.test.utils import setup_databases, teardown_databases  # noqa: E402

ITERATIONS = int(os.environ.get("BENCH_ITER", "40"))
WARMUP = 5
CLINIC = "+15550100001"
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def backend_cpu_ms(pid: int) -> float:
    """CPU (user + system) the PostgreSQL backend ``pid`` has used so far, in ms; 0 when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * TICK_MS  # utime, stime (fields 14 and 15 of stat)


class Paths:
    """Sets up one clinic and runs each hot path once per call of :meth:`step` for patient ``i``."""

    def __init__(self) -> None:
        from django.conf import settings
        from django.test import Client
        from twilio.request_validator import RequestValidator

        from channels_app import tasks
        from conversations.models import AgentSettings
        from tests.factories import PhoneNumberFactory, TenantFactory

        self.tenant = TenantFactory(short_name="Bench Clinic")
        PhoneNumberFactory(tenant=self.tenant, number=CLINIC)
        AgentSettings.objects.create(
            tenant=self.tenant,
            bookable_hours={d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        )
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # the test client's host, as in tests
        self.client = Client()
        self.validator = RequestValidator(self.tenant.twilio_auth_token)
        self.base = settings.PUBLIC_BASE_URL
        self.queued: list[int] = []
        tasks.sms_reply.delay = lambda message_id: self.queued.append(message_id)  # type: ignore[method-assign]
        self.calls: dict[int, str] = {}
        self.chats: dict[int, object] = {}

    def _post(self, path: str, params: dict) -> None:
        signature = self.validator.compute_signature(self.base + path, params)
        response = self.client.post(path, params, HTTP_X_TWILIO_SIGNATURE=signature)
        assert response.status_code in (200, 204), (path, response.status_code)

    def _sms(self, i: int, body: str) -> Callable[[], None]:
        from channels_app import twilio_payloads

        params = twilio_payloads.inbound_sms(
            account_sid=self.tenant.twilio_account_sid, from_=f"+1555300{i:04d}", to=CLINIC, body=body
        )
        return lambda: self._post("/twilio/sms/", params)

    def _reply(self) -> None:
        from channels_app.sms.replies import sms_reply

        assert sms_reply(inbound_id=self.queued.pop()) is not None

    def _answer(self, i: int) -> Callable[[], None]:
        from channels_app import twilio_payloads

        params = twilio_payloads.inbound_call(
            account_sid=self.tenant.twilio_account_sid, from_=f"+1555400{i:04d}", to=CLINIC
        )
        self.calls[i] = params["CallSid"]
        return lambda: self._post("/twilio/voice/", params)

    def _turn(self, i: int) -> Callable[[], None]:
        from channels_app import twilio_payloads

        speech = twilio_payloads.gather_speech(
            account_sid=self.tenant.twilio_account_sid,
            call_sid=self.calls[i],
            from_=f"+1555400{i:04d}",
            to=CLINIC,
            speech="Tuesday please",
        )
        return lambda: self._post("/twilio/voice/gather/?turn=1", speech)

    def _chat(self, i: int) -> Callable[[], None]:
        from channels_app.chat import services as chat

        session, _ = chat.chat_hello(tenant=self.tenant, visitor=f"bench-visitor-{i:08d}")
        chat.chat_message(session=session, client_id=f"msg-{i:06d}-1", text="hello there")
        return lambda: chat.chat_message(session=session, client_id=f"msg-{i:06d}-2", text="I'd like to book")

    def steps(self, i: int) -> list[tuple[str, Callable[[], None]]]:
        """The paths of iteration ``i`` in order, prepared (a chat's hello and first message are not measured)."""
        answer = self._answer(i)
        return [
            ("sms webhook (first)", self._sms(i, "Hi, I'd like to book an appointment")),
            ("sms reply (first)", self._reply),
            ("sms webhook (next)", self._sms(i, "Tuesday please")),
            ("sms reply (next)", self._reply),
            ("voice answer", answer),
            ("voice turn", self._turn(i)),
            ("chat message", self._chat(i)),
        ]


def run(paths: Paths, start: int, count: int, *, count_queries: bool) -> dict[str, dict[str, list[float]]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    out: dict[str, dict[str, list[float]]] = {}
    for i in range(start, start + count):
        for name, step in paths.steps(i):
            row = out.setdefault(name, {"queries": [], "cpu": [], "db_cpu": [], "wall": []})
            if count_queries:
                with CaptureQueriesContext(connection) as ctx:
                    step()
                row["queries"].append(len(ctx.captured_queries))
                continue
            db0, cpu0, wall0 = backend_cpu_ms(backend), time.process_time(), time.perf_counter()
            step()
            row["cpu"].append((time.process_time() - cpu0) * 1000)
            row["wall"].append((time.perf_counter() - wall0) * 1000)
            row["db_cpu"].append(backend_cpu_ms(backend) - db0)
    return out


def main() -> None:
    paths = Paths()
    run(paths, 0, WARMUP, count_queries=False)
    counted = run(paths, 1000, 3, count_queries=True)
    timed = run(paths, 2000, ITERATIONS, count_queries=False)
    print(f"hot paths: {ITERATIONS} iterations each (after {WARMUP} warm-up); CPU and wall in ms")
    print(f"{'path':<22}{'queries':>8}{'cpu p50':>9}{'cpu p90':>9}{'db cpu mean':>13}{'wall p50':>10}{'wall p90':>10}")
    for name, row in timed.items():
        queries = counted[name]["queries"]
        print(
            f"{name:<22}{statistics.median(queries):>8.0f}{statistics.median(row['cpu']):>9.1f}"
            f"{pct(row['cpu'], 90):>9.1f}{statistics.fmean(row['db_cpu']):>13.1f}"
            f"{statistics.median(row['wall']):>10.1f}{pct(row['wall'], 90):>10.1f}"
        )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (the machine may be shared)")


if __name__ == "__main__":
    old = setup_databases(verbosity=0, interactive=False, keepdb=False, serialized_aliases=set())
    try:
        main()
    finally:
        from django.db import connections

        connections.close_all()
        teardown_databases(old, verbosity=0)
