"""Urgency and intent of what a caller (or an email, or a voicemail) said: :mod:`conversations.triage`.

A thin adapter that keeps the channels' :class:`Assessment` shape: the triage service runs the clinic's rules
(the core red-flag knowledge base plus the tenant's ``emergency_phrases``) and, with ``OPENAI_API_KEY`` set,
the LLM's second opinion within ``timeout`` (at most ``VOICE_LLM_TIMEOUT_SECONDS``; a caller is waiting). The
rules are the floor: an LLM failure, timeout or lower answer never lowers them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from conversations import triage
from conversations.triage.service import TriageResult

EMERGENCY = 5


@dataclass(frozen=True)
class Assessment:
    """``urgency`` 1–5, ``intent`` (an intent name or ``"other"``), ``source`` (``rules`` or ``rules+llm``),
    ``reason`` a short non-PHI label for escalation (``"red flag: stroke"``), and the full ``result``."""

    urgency: int
    intent: str
    source: str
    reason: str
    result: TriageResult | None = None

    @property
    def is_emergency(self) -> bool:
        return self.urgency >= EMERGENCY


def assess(*, tenant, text: str, channel: str = "voice", timeout: float | None = None) -> Assessment:
    """Triage ``text`` for ``tenant``; never raises for an LLM failure. ``timeout`` (seconds) caps the LLM below
    ``VOICE_LLM_TIMEOUT_SECONDS``. Call it outside a transaction (it may wait on the network that long)."""
    seconds = (
        settings.VOICE_LLM_TIMEOUT_SECONDS if timeout is None else min(settings.VOICE_LLM_TIMEOUT_SECONDS, timeout)
    )
    result = triage.assess(
        text or "",
        phrases=tenant.emergency_phrases or [],
        timeout=seconds,
        use_llm=False if tenant.llm_forbidden else None,  # rules only for a clinic that forbids LLMs
    )
    return Assessment(
        urgency=result.urgency,
        intent=result.intent,
        source=result.engine,
        reason=result.reason or ("urgent" if result.level == "urgent" else ""),
        result=result,
    )
