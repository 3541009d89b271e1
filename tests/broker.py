"""The real broker in tests: what sits in this run's Redis queues, and the broker going down."""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager

import redis
from django.conf import settings


def take_queued(queue: str = "celery") -> list[tuple[str, list]]:
    """Remove every message from ``queue`` (kombu's Redis transport keeps a queue as a list under its name)
    and return them oldest first as ``(task name, positional args)``."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        with client.pipeline() as pipe:
            pipe.lrange(queue, 0, -1)
            pipe.delete(queue)
            raw, _ = pipe.execute()
    finally:
        client.close()
    taken = []
    for item in reversed(raw):  # LPUSH on publish, so the list's tail is the oldest
        message = json.loads(item)
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, _kwargs, _embed = json.loads(body)
        taken.append((message["headers"]["task"], args))
    return taken


@contextmanager
def broker_down():
    """Point this process's Celery app at a closed loopback port (a real connection refused), then restore."""
    from tests import processes

    with broker_at(f"redis://127.0.0.1:{processes.free_port()}/0"):
        yield


@contextmanager
def broker_at(url: str):
    """Point this process's Celery app at ``url`` (its tasks queue there), then restore. Both spellings of the
    setting are changed: with Django-namespaced configuration Celery 5.6 reads ``CELERY_BROKER_URL`` first."""
    from callsphere.celery import app

    saved = app.conf.broker_url, app.conf.get("CELERY_BROKER_URL")

    def forget_connections():
        app._pool = None
        app.amqp._producer_pool = None

    app.conf.broker_url = app.conf.CELERY_BROKER_URL = url
    forget_connections()
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.CELERY_BROKER_URL = saved
        forget_connections()
