"""Graceful overload: past capacity an HTTP request is answered 503 + Retry-After before any work,
and the escalation paths keep a budget of their own."""

from __future__ import annotations

import asyncio

from callsphere.overload import ShedLoad, default_limit


def _scope(path: str) -> dict:
    return {"type": "http", "path": path, "method": "POST", "headers": []}


async def _request(app, path: str) -> list[dict]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(_scope(path), receive, send)
    return sent


def test_past_capacity_is_503_with_retry_after_and_escalation_keeps_its_budget():
    async def scenario():
        release = asyncio.Event()
        reached: list[str] = []

        async def inner(scope, receive, send):
            reached.append(scope["path"])
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        app = ShedLoad(inner, limit=2, priority_limit=1)
        held = [asyncio.create_task(_request(app, "/twilio/sms/")) for _ in range(2)]
        await asyncio.sleep(0)
        shed = await _request(app, "/twilio/sms/")
        page = asyncio.create_task(_request(app, "/a/some-token"))
        await asyncio.sleep(0)
        release.set()
        done = await asyncio.gather(*held, page)
        return shed, done, reached, app

    shed, done, reached, app = asyncio.run(scenario())
    assert shed[0]["status"] == 503 and (b"retry-after", b"1") in shed[0]["headers"]
    assert reached.count("/twilio/sms/") == 2 and "/a/some-token" in reached  # the shed one never reached Django
    assert all(r[0]["status"] == 200 for r in done)
    assert app.shed == 1 and app.in_flight == {False: 0, True: 0}


def test_the_default_budget_lets_every_thread_work_with_three_waiting_each(monkeypatch):
    monkeypatch.delenv("HTTP_MAX_IN_FLIGHT", raising=False)
    monkeypatch.setenv("ASGI_THREADS", "4")
    assert default_limit() == 16  # 20 concurrent calls on 2 processes: none answered 503
    monkeypatch.setenv("HTTP_MAX_IN_FLIGHT", "5")
    assert default_limit() == 5
