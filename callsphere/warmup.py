"""Warm a process up before it takes traffic: the parsers that load or train on first use.

Triage's knowledge base and learned model (:mod:`conversations.triage.model` trains in-process, ~1–4 s on a busy
2-core machine), dateparser's language data and VADER's lexicon would otherwise be loaded by the first patient
message a process sees after a start or a restart, holding that request (and every request waiting on the same
lock) for seconds: in ``bench/bench_load.py`` the first 20 req/s step after a start had a p99 of ~3.8 s against
~70 ms once warm. The web process calls :func:`warm_up` before it listens (``callsphere.web``) and the Celery
worker before it forks its pool (``callsphere.celery``), so children share the loaded data. ``WARM_UP=0`` in the
environment skips it (the test suite's short-lived processes that never triage).
"""

from __future__ import annotations

import os
import time


def enabled() -> bool:
    """False when the environment says ``WARM_UP=0`` (or ``false`` / ``no``)."""
    return os.environ.get("WARM_UP", "1").strip().lower() not in ("0", "false", "no")


def warm_up() -> float:
    """Load triage (rules and model), dateparser and VADER now; returns the seconds it took. Needs Django set up
    (it calls ``django.setup()``, which is idempotent); touches no database."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings")
    django.setup()
    started = time.monotonic()
    import dateparser

    from conversations.triage import assess_rules
    from enrichment.scorers import sentiment

    dateparser.parse("tomorrow at 2pm")
    sentiment("warm up")
    assess_rules("warm up: chest pain / dolor de pecho")
    return time.monotonic() - started
