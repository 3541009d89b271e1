"""Link signing keys with a key id (``LINK_SIGNING_KEYS``), for the secrets sent in links: ack links
(``/a/…``, escalation) and chat links (``/c/…``, channels_app).

``settings.LINK_SIGNING_KEYS`` is a list of ``"<kid>:<secret>"``, newest first: new links are signed with the
first and carry its ``kid``, so a link is checked against exactly the key that signed it, and a key is retired
by removing it from the list (its links stop working then, not before). With the list empty, links are signed
with ``SECRET_KEY`` and carry no kid (the format links had before key ids), checked against ``SECRET_KEY`` and
``SECRET_KEY_FALLBACKS``; such links keep working after ``LINK_SIGNING_KEYS`` is introduced.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_KID = re.compile(r"^[A-Za-z0-9]{1,8}$")


def link_keys() -> list[tuple[str, str]]:
    """``[(kid, secret), …]`` newest first; raises ImproperlyConfigured for a malformed entry."""
    keys = []
    for entry in getattr(settings, "LINK_SIGNING_KEYS", []) or []:
        kid, sep, secret = str(entry).partition(":")
        if not sep or not _KID.match(kid) or len(secret) < 32:
            raise ImproperlyConfigured(
                "LINK_SIGNING_KEYS entries are <kid>:<secret>, kid 1-8 letters/digits, secret 32+ characters"
            )
        keys.append((kid, secret))
    return keys


def signing_key() -> tuple[str, str]:
    """``(kid, secret)`` new links are signed with: the newest link key, or ``("", SECRET_KEY)``."""
    keys = link_keys()
    return keys[0] if keys else ("", settings.SECRET_KEY)


def verifying_keys(kid: str) -> list[str]:
    """The secrets a link carrying ``kid`` may be signed with: that one key (none if unknown or retired), or
    for a link without a kid ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``."""
    if not kid:
        return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [secret for k, secret in link_keys() if k == kid]
