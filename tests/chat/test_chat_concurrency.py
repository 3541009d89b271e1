"""Visitors do not wait for each other: one visitor's slow agent turn (an LLM that has not answered yet) must not
hold another visitor's reply. Before the chat turn pool every turn ran on the one thread Channels shares per
process, so the second visitor's request never even reached the LLM while the first was in flight."""

from __future__ import annotations

import threading

import pytest

from tests import processes
from tests.stubs.openai_api import openai_stub, text

pytestmark = [pytest.mark.django_db(transaction=True)]


class HeldFirstTurn:
    """Answers every completion at once, except those of the visitor asking about parking, which wait until
    :meth:`release` (or 60 s, so a failing test cannot hang the run)."""

    def __init__(self):
        self.released = threading.Event()
        self.held = threading.Event()

    def __call__(self, body: dict) -> dict:
        last_user = next((m.get("content") or "" for m in reversed(body["messages"]) if m["role"] == "user"), "")
        if "parking" in last_user:
            self.held.set()
            self.released.wait(60)
            return text("There's free parking behind the building.")
        return text("We're open 8 to 5, Monday to Friday.")

    def release(self):
        self.released.set()


@pytest.fixture(scope="module")
def held():
    return HeldFirstTurn()


@pytest.fixture(scope="module")
def daphne(django_db_setup, django_db_blocker, tmp_path_factory, held):
    """daphne with the OpenAI-compatible agent pointed at a local stub (triage's LLM check off: agent turns only)."""
    with openai_stub(held) as server, django_db_blocker.unblock():
        proc, base = processes.start_daphne(
            log_path=tmp_path_factory.mktemp("daphne") / "daphne.log",
            AGENT_BACKEND="openai",
            OPENAI_API_KEY="sk-test-stub",
            OPENAI_BASE_URL=server.base_url,
            AGENT_MODEL="stub-model",
            OPENAI_TIMEOUT_SECONDS="60",
            TRIAGE_LLM="0",
        )
        try:
            yield base
        finally:
            held.release()
            processes.stop(proc)


def test_a_slow_turn_does_not_hold_another_visitors_reply(tenant, ws_connect, held):
    slow, quick = ws_connect(tenant), ws_connect(tenant)
    slow.send({"type": "hello", "visitor": "slowvisitor-0000000001"})
    quick.send({"type": "hello", "visitor": "quickvisitor-000000002"})
    slow.until(lambda f: f["type"] == "hello")
    quick.until(lambda f: f["type"] == "hello")

    slow.send({"type": "message", "id": "slow-0001", "text": "hiya is there parking near u guys?"})
    assert held.held.wait(20), "the first visitor's turn never reached the LLM"
    quick.send({"type": "message", "id": "quick-001", "text": "wut time do yall open tmrw"})
    frames = quick.until(lambda f: f["type"] == "reply" and f["seq"] is not None, timeout=20)
    assert "open 8 to 5" in frames[-1]["text"]  # answered while the first visitor's turn is still in flight
    assert not held.released.is_set()

    held.release()
    frames = slow.until(lambda f: f["type"] == "reply" and f["seq"] is not None, timeout=20)
    assert "parking" in frames[-1]["text"]
