"""The LLM's second opinion on a message (any OpenAI-compatible server at ``OPENAI_BASE_URL``).

Structured output (a JSON object: ``level``, ``red_flags``, ``rationale``) within the caller's deadline, no
retries (a patient is waiting). Every failure — timeout, HTTP error, malformed JSON, an unknown level — raises
:class:`SecondOpinionUnavailable`; the caller keeps the rules' answer, so the LLM can raise a level, never lower it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings

from conversations.llm_client import openai_client

LEVELS = ("routine", "urgent", "emergency")
PROMPT = (
    "You triage one message a patient sent to a medical clinic (SMS, chat, email or a phone transcript; any "
    'language). Answer with a JSON object only: {"level": "emergency"|"urgent"|"routine", '
    '"red_flags": [codes], "rationale": "at most 20 words, no patient details"}. emergency = someone may '
    "need 911, 988 or Poison Control now; urgent = a clinician should call back today; routine = everything "
    "else (bookings, billing, history, questions, jokes, idioms). Codes: {codes}."
)


class SecondOpinionUnavailable(Exception):
    """The LLM gave no usable answer (timeout, error, malformed output)."""


@dataclass(frozen=True)
class SecondOpinion:
    """The LLM's ``level`` (one of LEVELS), ``red_flags`` (known codes only), short ``rationale``, ``model``."""

    level: str
    red_flags: tuple[str, ...]
    rationale: str
    model: str


def configured() -> bool:
    """True when an OpenAI-compatible backend is configured (``OPENAI_API_KEY``) and ``TRIAGE_LLM`` is on."""
    return bool(settings.OPENAI_API_KEY) and bool(getattr(settings, "TRIAGE_LLM", True))


def ask(text: str, *, codes: list[str], timeout: float) -> SecondOpinion:
    """The LLM's opinion of ``text`` within ``timeout`` seconds. Raises SecondOpinionUnavailable."""
    import openai

    model = getattr(settings, "TRIAGE_MODEL", "") or settings.OPENAI_MODEL
    try:
        client = openai_client(timeout=timeout, max_retries=0)
        completion = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": PROMPT.replace("{codes}", ", ".join(codes))},
                {"role": "user", "content": text[:4000]},
            ],
            response_format={"type": "json_object"},
            temperature=0,
        )
        data = json.loads(completion.choices[0].message.content or "")
    except (openai.OpenAIError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise SecondOpinionUnavailable(type(exc).__name__) from exc
    level = str(data.get("level", "")).lower() if isinstance(data, dict) else ""
    if level not in LEVELS:
        raise SecondOpinionUnavailable(f"unknown level {level[:20]!r}")
    flags = tuple(str(f) for f in data.get("red_flags") or [] if str(f) in codes)
    return SecondOpinion(level=level, red_flags=flags, rationale=str(data.get("rationale", ""))[:300], model=model)
