"""A Celery worker outlives a Redis restart: Redis is killed (SIGKILL) under a running worker and started
again, and the worker — still the same process — consumes the next task (kombu >= 5.4, retries for ever)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from celery import Celery

from callsphere import embedded
from tests import processes

pytestmark = pytest.mark.django_db(transaction=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_survives_a_redis_restart(tmp_path):
    data = tmp_path / "broker"
    url = embedded.ensure_redis(data)
    worker = processes.start_worker(queues="celery", concurrency=1, log_path=tmp_path / "worker.log", REDIS_URL=url)
    log: Path = worker.log_path
    sender = Celery(broker=embedded.celery_broker_url(url), set_as_current=False)  # not the tests' app
    try:

        def probe(n: int) -> None:
            sender.send_task("conversations.tasks.close_idle_sessions", queue="celery", retry=True)
            processes.wait_for(lambda: log.read_text().count("succeeded") >= n, timeout=90)

        probe(1)
        redis_pid = int((data / "redis" / "redis.pid").read_text())
        os.kill(redis_pid, signal.SIGKILL)
        processes.wait_for(lambda: not _alive(redis_pid), timeout=10)
        processes.wait_for(lambda: "Connection to broker lost" in log.read_text(), timeout=60)
        embedded.ensure_redis(data)  # Redis is back (its append-only file kept the queues)
        probe(2)
        assert worker.poll() is None  # the same worker process, never restarted
    finally:
        processes.stop(worker)
        sender.close()
        embedded.stop_redis(data)
