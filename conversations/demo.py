"""``seed_demo`` hook: a demo API key for the demo tenant (printed by ``seed_demo --json`` as ``api_key``).

The key is derived from SECRET_KEY and the tenant id (HMAC-SHA256), so re-running the seed prints the same key
and stores nothing new; only its SHA-256 digest is in the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from django.conf import settings

from conversations.api.models import KEY_PREFIX, ApiKey
from conversations.api.services import api_key_create, api_key_grant_all_scopes


def demo_api_key(tenant) -> str:
    """The deterministic demo key of ``tenant`` (``csk_<8 hex>_<43 chars>``)."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"demo-api-key:{tenant.pk}".encode(), hashlib.sha256).digest()
    return f"{KEY_PREFIX}{digest[:4].hex()}_{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"


def seed(tenant) -> dict:
    raw = demo_api_key(tenant)
    prefix = raw[len(KEY_PREFIX) :].split("_", 1)[0]
    if not ApiKey.objects.filter(prefix=prefix, tenant=tenant).exists():
        api_key_create(tenant=tenant, name="demo (seed_demo)", raw_key=raw)
    else:  # a key seeded before a scope was added must still hold every scope
        api_key_grant_all_scopes(tenant=tenant, prefix=prefix)
    return {
        "api_key": raw,
        "api": {
            "base_url": settings.PUBLIC_BASE_URL + "/api/v1/",
            "schema": settings.PUBLIC_BASE_URL + "/api/schema/",
            "auth_header": f"Authorization: Bearer {raw}",
        },
    }
