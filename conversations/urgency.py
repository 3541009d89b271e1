"""Urgency (1–5) of a customer's words: the triage rules (:mod:`conversations.triage`), no network.

5 emergency (a red flag in context), 4 urgent (a same-day callback), 2 a prescription question, else 1. The
tenant's ``emergency_phrases`` are added to the core rules, never replacing them.
"""

from __future__ import annotations

from conversations.triage import assess_rules

EMERGENCY = 5


def classify(text: str, *, emergency_phrases: list[str], intent_name: str = "") -> int:
    """Urgency 1–5 of ``text`` (see the module docstring); ``intent_name`` "prescription" lifts 1 to 2."""
    urgency = assess_rules(text or "", phrases=emergency_phrases or []).urgency
    return max(urgency, 2) if intent_name == "prescription" and urgency < 4 else urgency
