"""Signed, expiring chat links ("text me a link", "dropped call → continue in chat").

The token is ``django.core.signing`` (HMAC with ``SECRET_KEY``, salted, timestamped) over an opaque customer
reference — the customer's random UUID — and nothing else: no name, phone, or anything a reader could use.
``CHAT_LINK_MAX_AGE`` (seconds, default one day) bounds its life; a forged, tampered, expired, merged-away or
other-tenant token is refused with :class:`InvalidLink`. A link binds the first browser that opens the chat
with it (:func:`chat_link_claim`); the same link from any other browser is refused, so a forwarded or leaked
SMS cannot hand the patient's conversation to someone else.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core import signing
from django.core.cache import cache

from identity.keys import signing_key, verifying_keys
from identity.models import Customer, Tenant

SALT = "callsphere.chat.link.v1"
PATH_PREFIX = "/c/"


class InvalidLink(ValueError):
    """The token is forged, tampered with, expired, or not for this tenant."""


def max_age() -> int:
    """Lifetime of a chat link in seconds (``CHAT_LINK_MAX_AGE``, default one day)."""
    return int(getattr(settings, "CHAT_LINK_MAX_AGE", 24 * 3600))


def chat_link_token(*, customer: Customer) -> str:
    """A URL-safe signed token for ``customer``: ``<kid>~<signed>`` when ``LINK_SIGNING_KEYS`` names the key
    (identity.keys), else Django's signed value under ``SECRET_KEY``."""
    kid, secret = signing_key()
    signed = signing.dumps({"c": str(customer.pk)}, key=secret, salt=SALT)
    return f"{kid}~{signed}" if kid else signed


def chat_link_url(*, customer: Customer) -> str:
    """``PUBLIC_BASE_URL/c/<token>``: the hosted chat page, already identified."""
    return f"{settings.PUBLIC_BASE_URL}{PATH_PREFIX}{chat_link_token(customer=customer)}"


def chat_link_customer(token: str, *, tenant: Tenant | None = None) -> Customer:
    """The (surviving) customer a valid token names, within ``tenant`` when given; raises :class:`InvalidLink`."""
    kid, _, signed = (token or "").rpartition("~")
    keys = verifying_keys(kid)
    try:
        if not keys:
            raise signing.BadSignature("unknown or retired key id")
        data = signing.loads(signed, key=keys[0], fallback_keys=keys[1:], salt=SALT, max_age=max_age())
    except signing.SignatureExpired:
        raise InvalidLink("link expired") from None
    except signing.BadSignature:
        raise InvalidLink("link invalid") from None
    qs = Customer.objects.select_related("tenant")
    if tenant is not None:
        qs = qs.filter(tenant=tenant)
    try:
        customer = qs.get(pk=data.get("c") if isinstance(data, dict) else None)
    except (Customer.DoesNotExist, ValueError, signing.BadSignature):
        raise InvalidLink("link invalid") from None
    seen = 0
    while customer.merged_into_id and seen < 5:
        customer, seen = Customer.objects.select_related("tenant").get(pk=customer.merged_into_id), seen + 1
    return customer


def chat_link_claim(token: str, *, tenant: Tenant, visitor: str) -> Customer:
    """Validate ``token`` (see :func:`chat_link_customer`) and bind it to ``visitor`` (the browser's visitor
    key, :func:`channels_app.chat.visitors.visitor_key` — never the raw visitor id).

    The first visitor to present a link owns it for the link's lifetime; the same visitor may present it again
    (a reconnect), any other gets :class:`InvalidLink` ("link already used"). The binding is kept in the cache
    (Redis) under a hash of the token, never the token itself.
    """
    customer = chat_link_customer(token, tenant=tenant)
    key = "chat-link-used:" + hashlib.sha256(token.encode()).hexdigest()
    if not cache.add(key, visitor, timeout=max_age()) and cache.get(key) != visitor:
        raise InvalidLink("link already used")
    return customer
