"""Is an inbound email's ``From`` authenticated? Read from our own receiving MTA's ``Authentication-Results``.

RFC 8601: the receiving border MTA (or the ESP relaying inbound mail to our webhook) records the SPF / DKIM /
DMARC verdicts in an ``Authentication-Results: <authserv-id>; dkim=pass header.d=…; dmarc=pass header.from=…``
header and must strip any such header with its own authserv-id that arrived from outside (§5). We therefore
trust only the topmost ``Authentication-Results`` header (the last one added, by the hop closest to us), and
only when its authserv-id is in ``settings.EMAIL_TRUSTED_AUTHSERV_IDS``. The sender counts as authenticated
when that header says ``dmarc=pass`` for the From domain, or ``dkim=pass`` with a signing domain aligned with
it (RFC 7489 §3.1.1 relaxed alignment, approximated as equal or a parent domain). SPF alone authenticates the
envelope sender, not ``From``, so it does not count.
"""

from __future__ import annotations

import re
from email.message import Message

from django.conf import settings

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([a-z0-9-]+)\s*=\s*([a-z]+)\b(.*)$", re.I | re.S)
_PROP = re.compile(r"\b(header\.[a-z]+)\s*=\s*\"?([^\s;\"]+)", re.I)


def _aligned(domain: str, from_domain: str) -> bool:
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return bool(domain) and (from_domain == domain or from_domain.endswith("." + domain))


def sender_authenticated(msg: Message, from_address: str) -> bool:
    """True when our trusted receiving MTA/ESP vouches (DMARC or aligned DKIM pass) for ``from_address``'s
    domain. ``from_address`` is the parsed, lower-cased From address. Never raises on junk headers."""
    trusted = {t.lower() for t in getattr(settings, "EMAIL_TRUSTED_AUTHSERV_IDS", [])}
    headers = msg.get_all("Authentication-Results") or []
    from_domain = from_address.rpartition("@")[2]
    if not trusted or not headers or not from_domain:
        return False
    value = _COMMENT.sub(" ", str(headers[0]))
    parts = [p.strip() for p in value.split(";")]
    authserv_id = (parts[0].split() or [""])[0].lower()
    if authserv_id not in trusted:
        return False
    for part in parts[1:]:
        match = _RESULT.match(part)
        if not match or match.group(2).lower() != "pass":
            continue
        method, props = match.group(1).lower(), {k.lower(): v for k, v in _PROP.findall(match.group(3))}
        if method == "dmarc" and props.get("header.from", "").lower().rstrip(".") == from_domain:
            return True
        if method == "dkim" and _aligned(props.get("header.d", ""), from_domain):
            return True
    return False
