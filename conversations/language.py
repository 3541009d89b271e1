"""The patient's language: detected per message, remembered on the customer, changeable on request.

Replies, confirmations, reminders and surveys are rendered with Django's i18n (``gettext``; catalogs in
``locale/<code>/LC_MESSAGES``) inside ``translation.override(language_of(customer))``. Detection reuses the
triage knowledge base's marker words (``conversations/triage/kb/<lang>.toml``): a message switches the remembered
language only when it clearly is the other language (two marker words more than the other, or Spanish letters),
so "2 PM" or "ok" never flips it; "in English please" / "en español, por favor" always does.
"""

from __future__ import annotations

import re

from conversations.triage.kb import load
from conversations.triage.text import normalise
from identity.models import Customer
from identity.services import LANGUAGES, customer_set_language

DEFAULT = "en"
_ASK_ENGLISH = re.compile(r"\b(in english|english,? please|speak english|habla(s)? ingl[eé]s|en ingl[eé]s)\b", re.I)
_ASK_SPANISH = re.compile(
    r"\b(en espa[nñ]ol|in spanish|spanish,? please|habla(s)? espa[nñ]ol|speak spanish|espa[nñ]ol,? por favor)\b",
    re.I,
)
_SPANISH_CHARS = re.compile(r"[ñ¿¡áéíóú]", re.I)
_WORD = re.compile(r"[a-z']+")
# Words a short message is clearly written in (greetings, thanks, the words of booking), on top of the markers.
_STRONG = {
    "es": {"hola", "gracias", "cita", "quiero", "quisiera", "necesito", "buenos", "buenas", "tardes", "noches",
           "favor", "cancelar", "cancela", "cambiar", "puedo", "usted", "manana", "semana", "hora"},
    "en": {"hello", "hi", "hey", "thanks", "thank", "appointment", "please", "want", "need", "book", "would",
           "could", "tomorrow", "morning", "afternoon", "week"},
}  # fmt: skip


def requested_language(text: str) -> str | None:
    """The language the patient explicitly asks for ("in English please", "¿habla español?"), or None."""
    if _ASK_SPANISH.search(text or ""):
        return "es"
    if _ASK_ENGLISH.search(text or ""):
        return "en"
    return None


def detect_language(text: str) -> str | None:
    """``"es"`` or ``"en"`` when ``text`` clearly is that language, else None (too short, numbers, emoji)."""
    norm = normalise(text)
    words = _WORD.findall(norm)
    markers = {code: lang.markers for code, lang in load().languages.items()}
    scores = {
        code: sum(1 for w in words if w in vocab) + 2 * sum(1 for w in words if w in _STRONG.get(code, ()))
        for code, vocab in markers.items()
    }
    scores["es"] = scores.get("es", 0) + 2 * len(_SPANISH_CHARS.findall(text or ""))
    es, en = scores.get("es", 0), scores.get("en", 0)
    if es >= en + 2 or (es >= 1 and en == 0 and len(words) <= 3 and _SPANISH_CHARS.search(text or "")):
        return "es"
    if en >= es + 2:
        return "en"
    return None


def language_of(customer: Customer | None) -> str:
    """The language to answer ``customer`` in (their preferred one; English when unknown)."""
    value = getattr(customer, "preferred_language", "") or DEFAULT
    return value if value in LANGUAGES else DEFAULT


def language_remember(*, customer: Customer, text: str) -> str:
    """Update the customer's preferred language from their message ``text`` (explicit request first, then a clear
    detection; an unknown language stays English without a write) and return the language to answer in."""
    current = language_of(customer)
    wanted = requested_language(text) or detect_language(text)
    if wanted and wanted != current:
        customer_set_language(customer=customer, language=wanted)
        return wanted
    return current
