"""Urgency (1–5) of a customer's words by the tenant's rules; shared by every channel and by enrichment.

5 if one of the tenant's emergency phrases occurs (case-insensitive substring); 4 for urgency words
("urgent", "asap", "emergency", "right away", "immediately", "severe", "worst"); 2 for a prescription or
medication intent; else 1. The tenant's ``emergency_phrases`` is the clinic's own list (identity.Tenant).
"""

from __future__ import annotations

import re

EMERGENCY = 5
_URGENT_WORDS = re.compile(r"\b(urgent|urgently|asap|emergency|right away|immediately|severe|worst)\b", re.I)


def classify(text: str, *, emergency_phrases: list[str], intent_name: str = "") -> int:
    """Urgency 1–5 of ``text`` (see module docstring)."""
    lowered = (text or "").lower()
    if any(p.lower() in lowered for p in emergency_phrases or [] if p):
        return EMERGENCY
    if _URGENT_WORDS.search(text or ""):
        return 4
    if intent_name == "prescription":
        return 2
    return 1
