"""Writes of API keys: create (the raw key is returned once and never stored) and revoke."""

from __future__ import annotations

from django.utils import timezone

from conversations.api.models import KEY_PREFIX, ApiKey, ApiScope, generate_key, hash_key
from identity.models import Tenant


def api_key_create(
    *, tenant: Tenant, name: str, scopes: list[str] | None = None, created_by=None, raw_key: str | None = None
) -> tuple[ApiKey, str]:
    """Create a key for ``tenant``; return ``(api_key, raw_key)``. Only the SHA-256 digest is stored.

    ``scopes`` default to every :class:`ApiScope`. ``raw_key`` (``csk_<8 hex>_<secret>``) is for callers that
    derive a deterministic key (the demo seed); otherwise a random one is generated. Raises ValueError for an
    unknown scope or a malformed ``raw_key``.
    """
    scopes = list(scopes) if scopes is not None else [s.value for s in ApiScope]
    unknown = set(scopes) - set(ApiScope.values)
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")
    if raw_key is None:
        raw_key, prefix = generate_key()
    else:
        if not raw_key.startswith(KEY_PREFIX) or raw_key.count("_") < 2 or len(raw_key) < 40:
            raise ValueError("raw_key must look like csk_<prefix>_<secret> (at least 40 chars)")
        prefix = raw_key[len(KEY_PREFIX) :].split("_", 1)[0]
    key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=prefix, hashed_key=hash_key(raw_key), scopes=scopes, created_by=created_by
    )
    return key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> bool:
    """Revoke a key (idempotent); returns False if it was already revoked. Takes effect on the next request."""
    updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    return bool(updated)


def api_key_grant_all_scopes(*, tenant: Tenant, prefix: str) -> bool:
    """Give the tenant's key ``prefix`` every :class:`ApiScope` (the demo key); True if it changed."""
    scopes = [s.value for s in ApiScope]
    key = ApiKey.objects.filter(tenant=tenant, prefix=prefix).first()
    if key is None or sorted(key.scopes or []) == sorted(scopes):
        return False
    key.scopes = scopes
    key.save(update_fields=["scopes"])
    return True
