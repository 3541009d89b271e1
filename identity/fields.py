"""An encrypted text field for secrets kept at rest (tenant Twilio auth tokens).

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``). The key is
``settings.FIELD_ENCRYPTION_KEY`` (a urlsafe-base64 32-byte Fernet key) or, when that is empty, one derived
from ``SECRET_KEY`` with HKDF-SHA256 — so rotating SECRET_KEY without setting FIELD_ENCRYPTION_KEY makes the
stored secrets unreadable (:class:`cryptography.fernet.InvalidToken` on read).
"""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models


@lru_cache(maxsize=4)
def _fernet(secret_key: str, explicit_key: str) -> Fernet:
    if explicit_key:
        return Fernet(explicit_key.encode())
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"callsphere-fields", info=b"fernet").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def fernet() -> Fernet:
    """The Fernet instance for the configured key."""
    return _fernet(settings.SECRET_KEY, settings.FIELD_ENCRYPTION_KEY)


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
