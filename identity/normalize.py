"""Normalisation of raw identifiers into the one form stored in ``CustomerIdentifier.value``.

Phones become E.164 with ``phonenumbers`` (the tenant's country as the default region); emails are stripped
and lower-cased; auth subjects and cookie ids are stripped. Junk values (placeholders, caller-ID withheld
markers, repeated digits) normalise to ``None`` and are never attached to anyone.
"""

from __future__ import annotations

import re

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from identity.models import IdentifierKind

JUNK_TOKENS = frozenset(
    {
        "",
        "null",
        "none",
        "nil",
        "undefined",
        "anonymous",
        "unknown",
        "restricted",
        "private",
        "blocked",
        "unavailable",
        "n/a",
        "na",
        "test",
        "0",
    }
)
# Caller IDs Twilio sends when the real number is withheld ("Anonymous", "Restricted", "Unknown" callers).
# Source: Twilio support, "Why am I getting calls from these strange numbers?"
TWILIO_WITHHELD_CALLER_IDS = frozenset({"+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253"})
_REPEATED_DIGITS = re.compile(r"^\+?(\d)\1+$")


def normalize_phone(raw: str | None, region: str = "US") -> str | None:
    """Return ``raw`` as E.164 (``+15551234567``) or ``None`` if it is junk or not a possible number.

    ``region`` is the ISO 3166 alpha-2 code used for numbers written without a country code.
    """
    if raw is None:
        return None
    text = str(raw).strip()
    if text.lower() in JUNK_TOKENS:
        return None
    digits = re.sub(r"[^\d+]", "", text)
    if not digits or _REPEATED_DIGITS.match(digits):
        return None
    try:
        parsed = phonenumbers.parse(text, region or "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if e164 in TWILIO_WITHHELD_CALLER_IDS or _REPEATED_DIGITS.match(str(parsed.national_number)):
        return None
    return e164


def validate_e164(value: str) -> None:
    """Field validator: ``value`` is a possible phone number written exactly in E.164 (``+15551234567``), as
    :func:`normalize_phone` would store it. Raises ``ValidationError`` otherwise (national formats, spaces,
    junk). Used for numbers we receive calls or texts from (responders, callers)."""
    if not value or normalize_phone(value) != value:
        raise ValidationError(f"{value!r} is not an E.164 phone number (e.g. +15551234567)")


def validate_dialable_e164(value: str) -> None:
    """Field validator: :func:`validate_e164` and a number in an assigned range (``phonenumbers.is_valid_number``),
    for numbers we dial or transfer to (a typo there fails a live call). Raises ``ValidationError``."""
    validate_e164(value)
    if not phonenumbers.is_valid_number(phonenumbers.parse(value, None)):
        raise ValidationError(f"{value!r} is not a valid E.164 phone number (e.g. +14155550100)")


def normalize_email(raw: str | None) -> str | None:
    """Return the stripped, lower-cased address, or ``None`` if it is junk or not a valid address."""
    if raw is None:
        return None
    text = str(raw).strip().lower()
    if text in JUNK_TOKENS:
        return None
    try:
        validate_email(text)
    except ValidationError:
        return None
    return text


def normalize_token(raw: str | None, *, max_length: int = 255) -> str | None:
    """Normalise an opaque id (auth subject, cookie id): stripped, non-junk, at most ``max_length`` chars."""
    if raw is None:
        return None
    text = str(raw).strip()
    if text.lower() in JUNK_TOKENS or len(text) > max_length:
        return None
    return text


def normalize(kind: str, raw: str | None, *, region: str = "US") -> str | None:
    """Normalise ``raw`` for identifier ``kind`` (an :class:`IdentifierKind` value); ``None`` if unusable."""
    if kind == IdentifierKind.PHONE:
        return normalize_phone(raw, region)
    if kind == IdentifierKind.EMAIL:
        return normalize_email(raw)
    if kind == IdentifierKind.COOKIE:
        return normalize_token(raw, max_length=128)
    if kind == IdentifierKind.AUTH:
        return normalize_token(raw)
    raise ValueError(f"unknown identifier kind {kind!r}")
