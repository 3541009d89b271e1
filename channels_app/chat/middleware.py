"""ASGI middleware for ``/ws/chat/``: find the tenant by the widget's public key, check the ``Origin``.

Runs before the websocket is accepted, so a page on a site the tenant did not allow (or a client with no
``Origin``, or an unknown key) gets the handshake refused (HTTP 403) and nothing reaches the consumer.
``AllowedHostsOriginValidator`` is not enough here: the allowed origins are per tenant
(``Tenant.allowed_widget_origins``, see :mod:`channels_app.chat.origins`).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier

from channels_app.chat.origins import origin_allowed
from identity.models import Tenant
from providers.text import pg_text

logger = logging.getLogger(__name__)


@database_sync_to_async
def _tenant(key: str):
    return Tenant.objects.filter(widget_public_key=key).first() if key else None


class WidgetOriginMiddleware:
    """Wraps the websocket router; chat paths get ``scope["chat_tenant"]`` or are denied."""

    def __init__(self, inner, path_prefix: str = "/ws/chat/"):
        self.inner = inner
        self.path_prefix = path_prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and scope.get("path", "").startswith(self.path_prefix):
            key = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("key") or [""])[0]
            origin = dict(scope.get("headers") or []).get(b"origin", b"").decode("latin-1")
            tenant = await _tenant(pg_text(key[:64]))
            if tenant is None or not origin_allowed(origin, tenant.allowed_widget_origins):
                logger.info("chat websocket refused: origin %r, key known: %s", origin, tenant is not None)
                return await WebsocketDenier()(scope, receive, send)
            scope = {**scope, "chat_tenant": tenant}
        return await self.inner(scope, receive, send)
