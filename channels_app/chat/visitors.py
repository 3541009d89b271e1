"""The chat visitor id is a bearer credential: only its keyed hash is ever stored.

The widget keeps a random visitor id in the browser (``localStorage``) and presents it in every ``hello``;
whoever presents it is that browser's customer (:func:`channels_app.chat.services.chat_hello`), so it must not
be readable from anything we keep or export (``call_logs`` metadata and transcripts, the DRF API, webhooks, the
warehouse, admin, Redis keys). Everywhere the chat channel keeps it — the ``cookie`` identifier's value,
``metadata["visitor_key"]``, a chat message's ``provider_id`` and ``sender``, the cache keys of the rate limit,
the verification code and the chat-link binding, a verification SMS's idempotency key — it keeps
:func:`visitor_key` instead: HMAC-SHA256 under a key derived from ``SECRET_KEY`` (Django's
:func:`~django.utils.crypto.salted_hmac`, own salt), hex, truncated to 32 characters (128 bits). The key is
one-way: presenting a stored key as a visitor id hashes it again and matches nothing.

Rotating ``SECRET_KEY`` changes every key: returning browsers then start as new anonymous visitors (they
can identify again by phone or email and the one-time code), nothing else breaks.
"""

from __future__ import annotations

from django.utils.crypto import salted_hmac

SALT = "callsphere.chat.visitor.v1"
KEY_LENGTH = 32


def visitor_key(visitor: str) -> str:
    """The stored form of the raw visitor id ``visitor``: 32 lower-case hex characters (deterministic)."""
    return salted_hmac(SALT, visitor, algorithm="sha256").hexdigest()[:KEY_LENGTH]
