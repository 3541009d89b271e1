"""The web process as production runs it: several daphne processes on one port (``WEB_CONCURRENCY``), a dead
one replaced, all stopped with the parent; and per-request costs that must not come back (issue 19)."""

from __future__ import annotations

import threading

import httpx
import psutil
import pytest

from tests import processes


def test_celery_result_backend_is_shared_by_request_threads():
    """Django under ASGI runs every request on a new thread; Celery built its (disabled) result backend again
    on each, scanning every installed package's entry points on every ``.delay()`` in a view."""
    from callsphere.celery import app

    seen = []
    thread = threading.Thread(target=lambda: seen.append(app.backend))
    thread.start()
    thread.join()
    assert seen == [app.backend]


@pytest.mark.django_db(transaction=True)
def test_web_serves_one_port_from_several_processes_and_replaces_a_dead_one(tmp_path):
    log_path = tmp_path / "web.log"
    proc, base = processes.start_daphne(log_path=log_path, WEB_CONCURRENCY="2")
    try:
        children = processes.wait_for(lambda: len(c := psutil.Process(proc.pid).children()) == 2 and c, timeout=30)
        with httpx.Client(timeout=5) as client:  # a new connection per request: the kernel spreads them
            assert all(
                client.get(base + "/healthz", headers={"Connection": "close"}).status_code == 200 for _ in range(6)
            )
        children[0].kill()
        replaced = processes.wait_for(
            lambda: {c.pid for c in psutil.Process(proc.pid).children()} - {children[0].pid, children[1].pid},
            timeout=30,
        )
        processes.wait_for(lambda: httpx.get(base + "/healthz", timeout=2).status_code == 200, timeout=30)
        assert "2 daphne processes" in log_path.read_text()
    finally:
        processes.stop(proc)
    pids = [children[1].pid, *replaced]
    processes.wait_for(
        lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids), timeout=15
    )
