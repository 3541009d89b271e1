"""Websocket routes. Each channel adapter adds its consumers here."""

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from channels_app.chat.routing import websocket_urlpatterns as chat_patterns
from conversations.inbox.consumer import InboxConsumer

websocket_urlpatterns: list = [
    *chat_patterns,
    # staff pages: the session user (cookie) and an Origin on ALLOWED_HOSTS (no cross-site websocket hijacking)
    path("ws/inbox/", AllowedHostsOriginValidator(AuthMiddlewareStack(InboxConsumer.as_asgi()))),
]
