"""Enrichment backends: ``LocalBackend`` (no network) and ``OpenAIBackend`` (any OpenAI-compatible server).

Both take an :class:`EnrichmentInput` and return :class:`Scores`; the service writes them with provenance.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from django.conf import settings

from conversations import urgency
from conversations.llm_client import openai_client
from enrichment import scorers

logger = logging.getLogger(__name__)


@dataclass
class EnrichmentInput:
    """What a backend sees: the channel, turns (role, text), tenant configuration and known facts."""

    channel: str
    turns: list[dict]
    intents: dict[str, list[str]]
    emergency_phrases: list[str]
    lead_intents: list[str]
    contactable: bool
    escalated: bool

    @property
    def customer_texts(self) -> list[str]:
        return [t.get("text", "") for t in self.turns if t.get("role") == "customer" and t.get("text")]


@dataclass
class Scores:
    """Scores in their ranges: sentiment −1..1, lead_score 0–100, satisfaction 1–5, urgency 1–5."""

    sentiment: float | None
    intent: str
    lead_score: int | None
    satisfaction: int | None
    urgency: int | None
    backend: str
    model: str
    version: str
    extra: dict = field(default_factory=dict)


class LocalBackend:
    """VADER sentiment and keyword heuristics (see ``enrichment.scorers``)."""

    name, model, version = "local", "vader-3.3.2+keywords", "1"

    def score(self, data: EnrichmentInput) -> Scores:
        texts = data.customer_texts
        if not texts:
            return Scores(None, "", None, None, None, self.name, self.model, self.version)
        joined = " ".join(texts)
        sent = scorers.sentiment(joined)
        intent_name = scorers.triage_intent(texts, data.intents)
        urgent = max(
            urgency.classify(text, emergency_phrases=data.emergency_phrases, intent_name=intent_name)
            for text in texts[-50:]
        )
        return Scores(
            sentiment=round(sent, 4) if sent is not None else None,
            intent=intent_name,
            lead_score=scorers.lead_score(
                intent_name=intent_name,
                lead_intents=data.lead_intents,
                customer_turns=len(texts),
                sentiment_value=sent,
                contactable=data.contactable,
                urgency_level=urgent,
            ),
            satisfaction=scorers.satisfaction(texts, escalated=data.escalated),
            urgency=urgent,
            backend=self.name,
            model=self.model,
            version=self.version,
        )


ENRICHMENT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["sentiment", "intent", "lead_score", "satisfaction", "urgency"],
    "properties": {
        "sentiment": {"type": "number", "description": "customer sentiment from -1 (negative) to 1 (positive)"},
        "intent": {"type": "string", "description": "one of the listed intents, or 'other'"},
        "lead_score": {"type": "integer", "description": "0-100 likelihood this is a new business lead"},
        "satisfaction": {"type": "integer", "description": "1-5 customer satisfaction (CSAT)"},
        "urgency": {"type": "integer", "description": "1-5 clinical urgency; 5 = emergency"},
    },
}

SYSTEM_PROMPT = (
    "You score one customer-service interaction of a clinic front desk. Channel: {channel}. "
    "Allowed intents: {intents}, or 'other'. Emergency phrases for this clinic: {emergency}. "
    "Return JSON matching the schema. Judge only the customer's words."
)


class OpenAIBackend:
    """One structured-output chat completion per interaction, the same prompt for every channel.

    Uses ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` (any OpenAI-compatible server) and ``OPENAI_MODEL``.
    Raises ``openai.OpenAIError`` subclasses on transport or API failure and ``ValueError`` on an answer
    that is not the schema.
    """

    name, version = "openai", "1"

    def __init__(self, client=None):
        self.model = settings.OPENAI_MODEL
        self.client = client or openai_client(max_retries=2)

    def score(self, data: EnrichmentInput) -> Scores:
        if not data.customer_texts:
            return Scores(None, "", None, None, None, self.name, self.model, self.version)
        transcript = "\n".join(f"{t.get('role')}: {t.get('text', '')}" for t in data.turns)
        completion = self.client.chat.completions.create(
            model=self.model,
            messages=[
                {
                    "role": "system",
                    "content": SYSTEM_PROMPT.format(
                        channel=data.channel,
                        intents=", ".join(data.intents) or "none",
                        emergency=", ".join(data.emergency_phrases) or "none",
                    ),
                },
                {"role": "user", "content": transcript},
            ],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "enrichment", "strict": True, "schema": ENRICHMENT_SCHEMA},
            },
        )
        raw = json.loads(completion.choices[0].message.content or "{}")
        try:
            intent_name = str(raw["intent"])[:64]
            return Scores(
                sentiment=round(max(-1.0, min(1.0, float(raw["sentiment"]))), 4),
                intent=intent_name if intent_name in data.intents else "other",
                lead_score=max(0, min(100, int(raw["lead_score"]))),
                satisfaction=max(1, min(5, int(raw["satisfaction"]))),
                urgency=max(1, min(5, int(raw["urgency"]))),
                backend=self.name,
                model=completion.model or self.model,
                version=self.version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"enrichment answer does not match the schema: {raw!r}") from exc


def get_backend():
    """``OpenAIBackend`` when ``OPENAI_API_KEY`` is set, else ``LocalBackend``."""
    return OpenAIBackend() if settings.OPENAI_API_KEY else LocalBackend()
