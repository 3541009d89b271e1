"""The OpenAI backend through the real ``openai`` client against a local stub of the API."""

from __future__ import annotations

import json
from datetime import date

import pytest
from django.utils import timezone

from conversations.agent.engine import turn
from conversations.models import Appointment
from conversations.selectors import state_get_all
from tests.clock import local, next_weekday, next_weekdays_since
from tests.stubs.openai_api import openai_stub, text, tool_call

pytestmark = pytest.mark.django_db


def test_tool_call_round_trip_books(tenant, customer, open_session, use_openai):
    tuesday = next_weekday(tenant, 1)

    def responder(body):
        last = body["messages"][-1]
        if last["role"] == "tool":
            return text("All set: " + json.loads(last["content"])["message"])
        return tool_call("book_appointment", {"date": tuesday.isoformat(), "time": "14:00"})

    sms = open_session("sms")
    turn(interaction=sms, text="placeholder")  # never sent: the backend is still local here
    with openai_stub(responder) as server:
        use_openai(server)
        reply = turn(interaction=sms, text="Book me Tuesday at 2pm")

    assert Appointment.objects.get().starts_at == local(tenant, tuesday, 14)
    assert reply.actions == ["book_appointment"] and reply.text.startswith("All set: You're booked for")
    first, second = (r["json"] for r in server.requests)
    assert server.requests[0]["headers"]["authorization"] == "Bearer sk-test-stub"
    assert first["model"] == "stub-model"
    assert {t["function"]["name"] for t in first["tools"]} >= {
        "book_appointment",
        "reschedule_appointment",
        "cancel_appointment",
        "list_availability",
        "request_callback",
        "handoff_to_human",
        "start_fresh",
    }
    system = first["messages"][0]
    assert system["role"] == "system" and tenant.timezone in system["content"] and tenant.name in system["content"]
    assert first["messages"][-1] == {"role": "user", "content": "Book me Tuesday at 2pm"}
    assert second["messages"][-2]["tool_calls"][0]["id"] == "call_1"
    tool_msg = second["messages"][-1]
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == "call_1"
    assert json.loads(tool_msg["content"])["ok"] is True


def test_history_and_state_reach_the_prompt(tenant, customer, open_session, use_openai):
    from conversations.services import interaction_append_turn

    sms = open_session("sms")
    interaction_append_turn(interaction=sms, role="customer", text="I'd like to book for Tuesday")
    started = timezone.now()
    turn(interaction=sms, text="I'd like to book for Tuesday")  # local backend stores the pending day
    tuesday = date.fromisoformat(state_get_all(conversation=sms.conversation)["pending"]["date"])
    assert tuesday.weekday() == 1 and tuesday in next_weekdays_since(tenant, 1, started)
    interaction_append_turn(interaction=sms, role="agent", text="What time on Tuesday suits you?")
    chat = open_session("chat")
    interaction_append_turn(interaction=chat, role="customer", text="2 PM")
    with openai_stub(lambda body: text("ok")) as server:
        use_openai(server)
        turn(interaction=chat, text="2 PM")
    messages = server.requests[0]["json"]["messages"]
    assert tuesday.isoformat() in messages[0]["content"]  # the pending state
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user"]
    assert messages[-1]["content"] == "2 PM"


def test_api_failure_falls_back_to_the_local_backend(tenant, customer, open_session, use_openai):
    with openai_stub(lambda body: text("unused")) as server:
        server.fail_status = 500
        use_openai(server)
        reply = turn(interaction=open_session(), text="I'd like to book for Tuesday")
    assert "what time" in reply.text.lower()
    assert state_get_all(conversation=open_session().conversation)["pending"]["intent"] == "book"
