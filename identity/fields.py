"""An encrypted text field for secrets kept at rest (tenant Twilio auth tokens).

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key ring,
:class:`cryptography.fernet.MultiFernet`: ``settings.FIELD_ENCRYPTION_KEYS`` (urlsafe-base64 32-byte Fernet
keys, newest first) — the first encrypts, every one decrypts — then, decrypt-only, keys derived with
HKDF-SHA256 from ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS`` (what older deployments encrypted with). Under
DEBUG with no key set the ``SECRET_KEY``-derived key encrypts too. A value no key opens raises
:class:`cryptography.fernet.InvalidToken` on read. ``manage.py rotate_encrypted_fields`` re-encrypts every
stored value under the newest key, after which retired keys can be dropped from the ring.
"""

import base64
from datetime import date
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


def _derived(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"callsphere-fields", info=b"fernet").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


@lru_cache(maxsize=4)
def _ring(explicit_keys: tuple[str, ...], secret_keys: tuple[str, ...]) -> MultiFernet:
    keys = [Fernet(k.strip().encode()) for k in explicit_keys if k.strip()]
    keys += [_derived(k) for k in secret_keys if k]
    return MultiFernet(keys)


def fernet() -> MultiFernet:
    """The key ring for the configured keys (encrypts with the newest; decrypts with any)."""
    return _ring(
        tuple(getattr(settings, "FIELD_ENCRYPTION_KEYS", ())),
        (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())),
    )


class EncryptedTextField(models.TextField):
    """A TextField stored as a Fernet token; reads return the plaintext ``str`` ("" stays "")."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        return fernet().decrypt(value.encode()).decode()

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            return value
        return fernet().encrypt(value.encode()).decode()


class EncryptedDateField(EncryptedTextField):
    """A date (e.g. a date of birth) stored as a Fernet token of its ISO form; reads return a ``date`` or None.
    Not queryable by value (encrypted): filter on it only for null / not null."""

    def from_db_value(self, value, expression, connection):
        text = super().from_db_value(value, expression, connection)
        return date.fromisoformat(text) if text else None

    def to_python(self, value):
        if value in (None, "") or isinstance(value, date):
            return value or None
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ValidationError("Enter a valid date (YYYY-MM-DD).") from None

    def get_prep_value(self, value):
        value = self.to_python(value)
        return fernet().encrypt(value.isoformat().encode()).decode() if value else None

    def formfield(self, **kwargs):
        from django import forms

        return models.Field.formfield(self, **{"form_class": forms.DateField, **kwargs})

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return value.isoformat() if value else ""
