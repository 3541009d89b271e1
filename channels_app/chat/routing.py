"""Websocket routes of the chat channel."""

from django.urls import path

from channels_app.chat.consumer import ChatConsumer

websocket_urlpatterns = [path("ws/chat/", ChatConsumer.as_asgi())]
