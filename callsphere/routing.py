"""Websocket routes. Each channel adapter adds its consumers here."""

from channels_app.chat.routing import websocket_urlpatterns as chat_patterns

websocket_urlpatterns: list = [*chat_patterns]
