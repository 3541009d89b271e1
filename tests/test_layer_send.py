"""Synchronous code sends to the Channels layer on one event loop per process (conversations.layer_send), not a
new loop and Redis connection per message; a forked child starts its own."""

import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from conversations import layer_send


def test_sends_reach_the_group_on_one_persistent_loop():
    layer = get_channel_layer()
    group = f"test.{uuid.uuid4().hex}"
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    try:
        assert layer_send.group_send(group, {"type": "inbox.event", "kind": "message", "n": 1})
        first = layer_send._sender_loop()
        assert layer_send.group_send(group, {"type": "inbox.event", "kind": "message", "n": 2})

        assert layer_send._sender_loop() is first and first.is_running()

        async def both():
            return [(await layer.receive(channel))["n"] for _ in range(2)]

        assert async_to_sync(both)() == [1, 2]
    finally:
        async_to_sync(layer.group_discard)(group, channel)


def test_a_forked_child_starts_its_own_loop(monkeypatch):
    parent = layer_send._sender_loop()
    monkeypatch.setattr(layer_send.os, "getpid", lambda: -1)  # as after fork: the parent's thread is gone

    child = layer_send._sender_loop()

    assert child is not parent and child.is_running()
