"""Which web origins may open the chat websocket for a tenant.

``Tenant.allowed_widget_origins`` lists ``scheme://host[:port]`` values; ``https://*.example.com`` allows any
subdomain. The app's own origin (``PUBLIC_BASE_URL``: the demo page and hosted chat links) is always allowed.
Comparison is on the normalised origin (lower case, default ports dropped), as browsers send it
(https://www.rfc-editor.org/rfc/rfc6454).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(value: str | None) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port, or None if not an http(s) origin."""
    if not value:
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if port and port != DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}:{port}"
    return f"{parts.scheme}://{host}"


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """True if ``origin`` (the browser's ``Origin`` header) matches the app or one of ``allowed``."""
    normalized = normalize_origin(origin)
    if normalized is None:
        return False
    if normalized == normalize_origin(settings.PUBLIC_BASE_URL):
        return True
    for pattern in allowed or []:
        if pattern.strip() == "*":
            continue  # never a wildcard for every site
        scheme, _, rest = pattern.strip().partition("://")
        if rest.startswith("*."):
            suffix = normalize_origin(f"{scheme}://{rest[2:]}")
            if suffix:
                s_scheme, _, s_host = suffix.partition("://")
                n_scheme, _, n_host = normalized.partition("://")
                if s_scheme == n_scheme and n_host.endswith("." + s_host):
                    return True
        elif normalize_origin(pattern) == normalized:
            return True
    return False
