"""Per-tenant API keys for the export API: random, shown once, stored as a SHA-256 digest, scoped, revocable.

A key looks like ``csk_<prefix>_<secret>``: ``prefix`` (8 chars) is stored in clear to find the row, the
whole key is stored only as ``sha256(key)`` (a random 256-bit secret needs no slow hash; this is how GitHub
and Stripe store tokens). Loaded by :mod:`conversations.models` so Django registers it in ``conversations``.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from identity.models import Tenant

KEY_PREFIX = "csk_"


class ApiScope(models.TextChoices):
    """What a key may read. Each endpoint names the scope it needs."""

    INTERACTIONS_READ = "interactions:read", "Read interactions (call_logs)"
    CONVERSATIONS_READ = "conversations:read", "Read conversations"
    CONVERSATIONS_WRITE = "conversations:write", "Send staff messages, take over and release conversations"
    APPOINTMENTS_READ = "appointments:read", "Read appointments"
    CUSTOMERS_READ = "customers:read", "Read Customer 360 timelines"
    REPORTS_READ = "reports:read", "Read reports (quarterly review)"
    AUDIT_READ = "audit:read", "Read the access audit"
    PRIVACY_READ = "privacy:read", "Export everything held about a patient"
    PRIVACY_WRITE = "privacy:write", "Erase a patient"


def hash_key(raw: str) -> str:
    """Hex SHA-256 of a raw key (what is stored and compared)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def generate_key() -> tuple[str, str]:
    """A new raw key and its lookup prefix: ``("csk_<prefix>_<secret>", prefix)``."""
    prefix = secrets.token_hex(4)
    return f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix


def _all_scopes() -> list[str]:
    return [s.value for s in ApiScope]


class ApiKey(models.Model):
    """A tenant's API credential. ``hashed_key`` only; the raw key is shown once at creation."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, help_text="Who or what uses it, e.g. 'warehouse loader'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    scopes = ArrayField(models.CharField(max_length=40, choices=ApiScope.choices), default=_all_scopes)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({KEY_PREFIX}{self.prefix}_…)"

    def is_usable(self, now=None) -> bool:
        """False once revoked or expired."""
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
