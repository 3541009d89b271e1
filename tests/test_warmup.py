"""A web or worker process loads triage before it takes traffic (callsphere.warmup), not on a patient's message."""

import sys

import pytest

from callsphere import warmup, web
from conversations.triage import model as triage_model


def test_warm_up_trains_the_triage_model_without_a_message(monkeypatch):
    monkeypatch.setattr(triage_model, "_model", None)  # as in a freshly started process

    seconds = warmup.warm_up()

    assert triage_model._model is not None
    assert seconds > 0


@pytest.mark.parametrize(("value", "warms"), [(None, True), ("1", True), ("0", False), ("false", False)])
def test_web_warms_up_before_daphne_listens(monkeypatch, value, warms):
    events: list[str] = []
    monkeypatch.setattr(warmup, "warm_up", lambda: events.append("warm up") or 0.0)
    monkeypatch.setattr("daphne.cli.CommandLineInterface.run", lambda self, args: events.append("listen"))
    monkeypatch.setattr(web, "_start_watchdog", lambda: None)
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # serve() wraps stdout in the redacting stream; undone after
    monkeypatch.setenv("WEB_PROCESS_INDEX", "1")
    if value is None:
        monkeypatch.delenv("WARM_UP", raising=False)
    else:
        monkeypatch.setenv("WARM_UP", value)
    for name in ("ASGI_THREADS", "DB_POOL_MAX_SIZE"):  # serve() sizes them in the environment; undone after
        monkeypatch.setenv(name, "4")

    web.serve(["-b", "127.0.0.1", "-p", "0"])

    assert events == (["warm up", "listen"] if warms else ["listen"])
