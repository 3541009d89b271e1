"""Benchmark: latency of the voice webhooks in-process (Django test client, real PostgreSQL, local agent).

Twilio waits at most 15 s for TwiML and a caller hears silence while we think, so the per-turn time matters.
Run: ``.venv/bin/python -m pytest -q -s bench/bench_voice_turns.py`` — prints p50 / p95 / max per webhook kind.
Not part of the test suite; asserts nothing about speed.
"""

import statistics
import sys
import time
from pathlib import Path

import pytest

if __name__ == "__main__":
    # ``make bench`` runs every bench file as a script: hand this one to pytest (it needs the test database and the
    # ``client`` fixture) before anything imports Django, with the project's pytest settings and conftest.
    ROOT = Path(__file__).resolve().parent.parent
    sys.exit(
        pytest.main(
            ["-q", "-s", "-p", "no:cacheprovider", f"--rootdir={ROOT}", "-c", str(ROOT / "pyproject.toml"), __file__]
        )
    )

from django.conf import settings
from twilio.request_validator import RequestValidator

from channels_app import twilio_payloads
from conversations.models import AgentSettings
from tests.factories import PhoneNumberFactory, TenantFactory

CALLS = 25
LINES = ["Hi, this is Ana, I'd like to book an appointment", "Tuesday please", "What's my name?"]


def _post(client, tenant, path, params):
    signature = RequestValidator(tenant.twilio_auth_token).compute_signature(settings.PUBLIC_BASE_URL + path, params)
    started = time.perf_counter()
    response = client.post(path, params, HTTP_X_TWILIO_SIGNATURE=signature)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code in (200, 204)
    return elapsed


@pytest.mark.django_db
def test_voice_webhook_latency(client):
    tenant = TenantFactory()
    PhoneNumberFactory(tenant=tenant, number="+15550109999")
    AgentSettings.objects.create(
        tenant=tenant,
        bookable_hours={d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    )
    timings: dict[str, list[float]] = {"answer": [], "turn": [], "status": []}
    account = tenant.twilio_account_sid
    for i in range(CALLS):
        caller = f"+1555444{i:04d}"
        params = twilio_payloads.inbound_call(account_sid=account, from_=caller, to="+15550109999")
        sid = params["CallSid"]
        timings["answer"].append(_post(client, tenant, "/twilio/voice/", params))
        for turn, line in enumerate(LINES, start=1):
            speech = twilio_payloads.gather_speech(
                account_sid=account, call_sid=sid, from_=caller, to="+15550109999", speech=line
            )
            timings["turn"].append(_post(client, tenant, f"/twilio/voice/gather/?turn={turn}", speech))
        status = twilio_payloads.call_status(
            account_sid=account, call_sid=sid, from_=caller, to="+15550109999", status="completed", duration=30
        )
        timings["status"].append(_post(client, tenant, "/twilio/voice/status/", status))
    print(f"\nvoice webhooks, {CALLS} calls × {len(LINES)} turns (ms):")
    for kind, values in timings.items():
        values.sort()
        p95 = values[max(0, int(len(values) * 0.95) - 1)]
        print(
            f"  {kind:7s} n={len(values):3d}  p50={statistics.median(values):7.1f}  p95={p95:7.1f}  "
            f"max={values[-1]:7.1f}"
        )
