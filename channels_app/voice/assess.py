"""Urgency (1–5) and intent of what a caller said: the tenant's rules, plus the LLM backend when configured.

Rules: ``conversations.urgency.classify`` with the tenant's ``emergency_phrases`` (the rule every channel uses)
and ``enrichment.scorers.intent`` over the tenant's ``intents``. With ``OPENAI_API_KEY`` set, the enrichment
OpenAI backend (any OpenAI-compatible server at ``OPENAI_BASE_URL``) also scores the text, with a short timeout
(``VOICE_LLM_TIMEOUT_SECONDS``, lowered further by a caller's ``timeout``, no retries — a caller is waiting); the
higher urgency wins, the LLM's intent is preferred when it named one. An LLM failure is logged and the rules'
answer stands, so a flaky LLM never lowers urgency nor drops a call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from conversations import urgency as urgency_rules
from enrichment import scorers

logger = logging.getLogger(__name__)

EMERGENCY = urgency_rules.EMERGENCY


@dataclass(frozen=True)
class Assessment:
    """``urgency`` 1–5, ``intent`` (a tenant intent name or ``"other"``), ``source`` (``rules`` or ``rules+llm``),
    ``reason`` a short non-PHI label for escalation (``"emergency phrase"``, ``"urgency words"``, ``"llm"``)."""

    urgency: int
    intent: str
    source: str
    reason: str

    @property
    def is_emergency(self) -> bool:
        return self.urgency >= EMERGENCY


def _llm_backend(timeout: float | None = None):
    import openai

    from enrichment.backends import OpenAIBackend

    seconds = settings.VOICE_LLM_TIMEOUT_SECONDS
    if timeout is not None:
        seconds = max(0.1, min(seconds, timeout))
    client = openai.OpenAI(
        api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL, timeout=seconds, max_retries=0
    )
    return OpenAIBackend(client=client)


def assess(*, tenant, text: str, channel: str = "voice", timeout: float | None = None) -> Assessment:
    """Assess ``text`` (the caller's words) for ``tenant``; never raises for an LLM failure.

    ``timeout`` (seconds) caps the LLM call below ``VOICE_LLM_TIMEOUT_SECONDS`` (the voice turn's budget);
    None keeps the setting. Runs no transaction of its own and should be called outside one (it may wait on
    the network for that long).
    """
    phrases = tenant.emergency_phrases or []
    intent_name, _ = scorers.intent(text or "", tenant.intents or {})
    level = urgency_rules.classify(text, emergency_phrases=phrases, intent_name=intent_name)
    reason = "emergency phrase" if level >= EMERGENCY else "urgency words" if level >= 4 else ""
    source = "rules"
    if settings.OPENAI_API_KEY and (text or "").strip():
        from enrichment.backends import EnrichmentInput

        data = EnrichmentInput(
            channel=channel,
            turns=[{"role": "customer", "text": text}],
            intents=tenant.intents or {},
            emergency_phrases=phrases,
            lead_intents=tenant.lead_intents or [],
            contactable=True,
            escalated=False,
        )
        try:
            scores = _llm_backend(timeout).score(data)
        except Exception as exc:  # noqa: BLE001 - any LLM failure leaves the rules' answer
            logger.warning("LLM urgency check failed (%s); using the tenant's rules", type(exc).__name__)
        else:
            source = "rules+llm"
            if (scores.urgency or 0) > level:
                level, reason = scores.urgency, "llm"
            if scores.intent and scores.intent != "other":
                intent_name = scores.intent
    return Assessment(urgency=level, intent=intent_name, source=source, reason=reason)
