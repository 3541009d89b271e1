"""API authentication: per-tenant API keys, and the tenant a request acts for.

Clients send ``Authorization: Bearer csk_<prefix>_<secret>``. The row is found by its prefix and the key
compared by SHA-256 digest in constant time; revoked or expired keys fail with 401. ``request.auth`` is the
:class:`~conversations.api.models.ApiKey`; its tenant scopes every queryset (see :func:`request_tenant_id`).
"""

from __future__ import annotations

import hmac
import uuid
from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from conversations.api.models import KEY_PREFIX, ApiKey, hash_key
from identity.admin_scoping import user_tenant_id

LAST_USED_RESOLUTION = timedelta(minutes=5)  # write last_used_at at most this often per key


class ApiKeyUser(AnonymousUser):
    """The principal of an API-key request: authenticated, not a Django user, carries the key."""

    def __init__(self, api_key: ApiKey):
        super().__init__()
        self.api_key = api_key

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer csk_…`` → ``(ApiKeyUser, ApiKey)``; raises 401 for a bad, revoked or expired key."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header.")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid API key.") from exc
        if not raw.startswith(KEY_PREFIX) or raw.count("_") < 2:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        prefix = raw[len(KEY_PREFIX) :].split("_", 1)[0]
        key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
        if key is None or not hmac.compare_digest(key.hashed_key, hash_key(raw)):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        now = timezone.now()
        if not key.is_usable(now):
            raise exceptions.AuthenticationFailed("API key revoked or expired.")
        if key.last_used_at is None or key.last_used_at < now - LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return ApiKeyUser(key), key

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


def request_tenant_id(request) -> uuid.UUID | None:
    """The tenant a request acts for: the API key's tenant, or a staff session user's membership tenant."""
    if isinstance(request.auth, ApiKey):
        return request.auth.tenant_id
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and getattr(user, "is_staff", False):
        return user_tenant_id(user)
    return None


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """OpenAPI: an HTTP bearer scheme, so generated clients send ``Authorization: Bearer <key>``."""

    target_class = "conversations.api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "csk_<prefix>_<secret>",
            "description": "A per-tenant API key created in admin (API keys). Scopes limit what it reads.",
        }
