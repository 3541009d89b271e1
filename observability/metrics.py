"""The Prometheus series callsphere records (``prometheus_client``), multi-process safe.

Web (daphne), the Celery workers (prefork children) and beat each record into their own files under
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode); ``/metrics`` in the web process adds them
up at scrape time (:mod:`callsphere.metrics`). In docker-compose every app container mounts the same directory,
so a file is named by host name *and* pid (``counter_<host>-<pid>.db``): two containers' pid 7 never share one.
Without ``PROMETHEUS_MULTIPROC_DIR`` (one process, e.g. ``manage.py shell``) the values live in memory.

Series (no label ever carries a tenant, a patient or a phone number):

- ``callsphere_webhook_latency_seconds{channel}``: histogram, wall time of one provider webhook request
  (``sms``, ``voice``, ``escalation``, ``email``), measured by :class:`callsphere.metrics.WebhookLatencyMiddleware`.
- ``callsphere_celery_tasks_total{task,state}``: counter of finished task runs by Celery state (``SUCCESS``,
  ``FAILURE``, ``RETRY``); task failures are ``state="FAILURE"``.
- ``callsphere_escalation_step_lateness_seconds``: histogram, how long after its due time an escalation step
  fired (0 for a step on time).
- ``callsphere_outbound_delivery_failures_total{channel}``: counter of outbound messages (SMS, call, email)
  marked failed by a permanent provider error.
- Computed at scrape time (:mod:`callsphere.metrics`): ``callsphere_celery_queue_depth{queue}`` and
  ``callsphere_enrichment_lag_seconds``.
"""

from __future__ import annotations

import os
import socket

from prometheus_client import Counter, Histogram, values

_HOST = socket.gethostname().replace("_", "-") or "host"


def process_identifier() -> str:
    """``<host>-<pid>``: distinct for every running process of every container sharing the directory."""
    return f"{_HOST}-{os.getpid()}"


def multiprocess_dir() -> str:
    """``PROMETHEUS_MULTIPROC_DIR`` (empty: single-process, in-memory values)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


if multiprocess_dir():
    os.makedirs(multiprocess_dir(), exist_ok=True)
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)

# Webhook answers: Twilio times out at 15 s; most should be well under a second.
WEBHOOK_LATENCY = Histogram(
    "callsphere_webhook_latency_seconds",
    "Wall time of one provider webhook request, by channel.",
    ["channel"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0),
)
CELERY_TASKS = Counter(
    "callsphere_celery_tasks",
    "Finished Celery task runs by task name and final state (FAILURE = task failures).",
    ["task", "state"],
)
ESCALATION_STEP_LATENESS = Histogram(
    "callsphere_escalation_step_lateness_seconds",
    "Seconds between an escalation step's due time and the moment it fired.",
    buckets=(0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
OUTBOUND_DELIVERY_FAILURES = Counter(
    "callsphere_outbound_delivery_failures",
    "Outbound messages marked failed by a permanent provider error, by channel.",
    ["channel"],
)
