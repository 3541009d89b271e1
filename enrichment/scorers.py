"""Local scorers: no network, deterministic, documented heuristics.

- sentiment: VADER's compound score (−1..1) of the customer's words (Hutto & Gilbert, ICWSM 2014).
- intent: the triage engine's intent (``conversations.triage``: booking, reschedule, cancel, billing,
  prescription, results, general question) of the customer's turns, newest first; when it finds none, the
  tenant's own intents, each with example phrases; the intent whose examples share the most
  content words with the text (Jaccard over lower-cased tokens without stop words, with a bonus for an exact
  example phrase inside the text) wins if it scores at least ``INTENT_THRESHOLD``; otherwise ``"other"``.
- urgency (1–5): ``conversations.urgency.classify`` (the same rule every channel uses live).
- lead score (0–100): 10 base; +40 if the intent is ``book_appointment``, +25 for another lead intent
  (tenant ``lead_intents``, default booking/rescheduling/general questions); +5 per customer turn up to +20;
  +15 × sentiment; +10 if a verified phone or email is known; capped at 20 when urgency is 5 (a patient in
  an emergency is not a sales lead).
- satisfaction / CSAT (1–5): an explicit rating in the customer's last turns ("5", "4/5", "5 stars") wins;
  otherwise the VADER compound of the last three customer turns mapped ≥0.5→5, ≥0.05→4, >−0.05→3, >−0.5→2,
  else 1; an escalated interaction is capped at 3.
"""

from __future__ import annotations

import re
from functools import lru_cache

INTENT_THRESHOLD = 0.2
DEFAULT_LEAD_INTENTS = ("book_appointment", "reschedule_appointment", "general_question")
_RATING = re.compile(r"^\s*([1-5])(\s*/\s*5|\s*stars?|\s*out of 5)?\s*[.!]?\s*$", re.I)
_TOKEN = re.compile(r"[a-z0-9']+")
_STOP = frozenset(
    "a an the i i'd i'm me my we our you your to for of in on at is are be can could would like want please "
    "and or it this that with do does have has am will just about".split()
)


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(text: str) -> float | None:
    """VADER compound score of ``text`` in −1..1, or None for empty text."""
    if not text.strip():
        return None
    return float(_vader().polarity_scores(text)["compound"])


def _tokens(text: str) -> set[str]:
    return {t for t in _TOKEN.findall(text.lower()) if t not in _STOP}


def intent(text: str, intents: dict[str, list[str]]) -> tuple[str, float]:
    """Best ``(intent name, score 0..1)`` for ``text`` among ``intents`` (name → example phrases)."""
    words = _tokens(text)
    lowered = text.lower()
    best, best_score = "other", 0.0
    for name, examples in (intents or {}).items():
        for example in examples:
            ex_words = _tokens(example)
            if not ex_words or not words:
                continue
            score = len(words & ex_words) / len(words | ex_words)
            if example.lower() in lowered:
                score += 0.5
            if score > best_score:
                best, best_score = name, score
    if best_score < INTENT_THRESHOLD:
        return "other", best_score
    return best, min(best_score, 1.0)


def triage_intent(texts: list[str], intents: dict[str, list[str]]) -> str:
    """The intent of the customer's ``texts``: the triage engine's (newest turn first), else the tenant's
    example phrases (:func:`intent`), else ``"other"``."""
    from conversations.triage import assess_rules

    for text in reversed(texts[-20:]):
        found = assess_rules(text).intent
        if found != "other":
            return found
    return intent(" ".join(texts), intents)[0]


def lead_score(
    *,
    intent_name: str,
    lead_intents: list[str] | None,
    customer_turns: int,
    sentiment_value: float | None,
    contactable: bool,
    urgency_level: int,
) -> int:
    """Lead score 0–100 by the documented heuristic (module docstring)."""
    score = 10.0
    if intent_name == "book_appointment":
        score += 40
    elif intent_name in (lead_intents or DEFAULT_LEAD_INTENTS):
        score += 25
    score += min(customer_turns, 4) * 5
    score += 15 * (sentiment_value or 0.0)
    score += 10 if contactable else 0
    if urgency_level >= 5:
        score = min(score, 20)
    return max(0, min(100, round(score)))


def satisfaction(customer_texts: list[str], *, escalated: bool) -> int | None:
    """CSAT 1–5 from an explicit rating or the sentiment of the last three customer turns; None if silent."""
    if not customer_texts:
        return None
    for text in reversed(customer_texts[-3:]):
        if match := _RATING.match(text):
            return int(match.group(1))
    compound = sentiment(" ".join(customer_texts[-3:])) or 0.0
    value = 5 if compound >= 0.5 else 4 if compound >= 0.05 else 3 if compound > -0.05 else 2 if compound > -0.5 else 1
    return min(value, 3) if escalated else value
