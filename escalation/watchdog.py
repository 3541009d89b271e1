"""The web process's watchdog: a daemon thread that runs :func:`escalation.services.heartbeat.pipeline_watch`
every ``ESCALATION_WATCHDOG_SECONDS`` (default 5 s), so the admins are texted about a dead escalation pipeline
even when no uptime monitor polls ``/healthz/escalation``. Started by ``python -m callsphere.web``; never by
Celery (the thing it watches)."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)
_started: threading.Thread | None = None


def _loop(interval: float, stop: threading.Event) -> None:
    from escalation.services.heartbeat import pipeline_watch

    # first check after one heartbeat max age: a whole stack starting together gives beat and the worker time to
    # beat before anyone is texted (a /healthz/escalation poll meanwhile still answers the truth)
    if stop.wait(max(interval, float(settings.ESCALATION_HEARTBEAT_MAX_AGE))):
        return
    while True:
        try:
            pipeline_watch()
        except Exception:  # a database blip must not kill the watchdog
            logger.exception("escalation watchdog check failed")
        finally:
            close_old_connections()
        if stop.wait(interval):
            return


def start(stop: threading.Event | None = None) -> threading.Thread | None:
    """Start the watchdog once per process (None when ``ESCALATION_WATCHDOG_SECONDS`` is 0)."""
    global _started
    interval = float(settings.ESCALATION_WATCHDOG_SECONDS)
    if interval <= 0 or _started is not None:
        return _started
    _started = threading.Thread(
        target=_loop, args=(interval, stop or threading.Event()), name="escalation-watchdog", daemon=True
    )
    _started.start()
    return _started
