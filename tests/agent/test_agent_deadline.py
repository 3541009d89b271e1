"""The agent's LLM is bounded by the caller's deadline, and a tool that acted is never repeated by a fallback.
Real ``openai`` client against the local stub of the API."""

from __future__ import annotations

import threading
import time

import pytest

from conversations.agent.engine import turn
from conversations.models import Appointment
from tests.clock import next_weekday
from tests.stubs.openai_api import openai_stub, tool_call

pytestmark = pytest.mark.django_db


def test_a_slow_llm_is_cut_off_at_the_deadline_and_the_local_backend_answers(
    tenant, customer, open_session, use_openai
):
    release, finished = threading.Event(), threading.Event()

    def slow(body):
        release.wait(30)  # the LLM "thinks" until the test lets it go
        finished.set()
        return {"content": "too late"}

    sms = open_session()
    turn(interaction=sms, text="hello")  # warm up (parsers, caches) on the local backend: the budget is the LLM's
    with openai_stub(slow) as server:
        use_openai(server)
        reply = turn(interaction=sms, text="I'd like to book for Tuesday", deadline=time.monotonic() + 5.0)
        answered_while_llm_busy = not finished.is_set()
        release.set()
    assert answered_while_llm_busy and "what time" in reply.text.lower()  # the local backend's answer
    assert len(server.requests) == 1  # no client-side retry past the deadline


def test_when_the_llm_fails_after_a_tool_acted_the_tool_answers_and_nothing_runs_twice(
    tenant, customer, open_session, use_openai
):
    tuesday = next_weekday(tenant, 1)
    stub = {}

    def book_then_fail(body):
        stub["server"].fail_status = 500  # the follow-up request (with the tool's result) fails
        return tool_call("book_appointment", {"date": tuesday.isoformat(), "time": "14:00"})

    with openai_stub(book_then_fail) as server:
        stub["server"] = server
        use_openai(server)
        reply = turn(interaction=open_session(), text="Book me Tuesday at 2pm")
    assert Appointment.objects.count() == 1
    assert reply.actions == ["book_appointment"] and reply.text.startswith("You're booked for")
