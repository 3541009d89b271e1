"""Sending to the Channels layer from synchronous code (web request threads, chat turn threads, Celery workers)
without an event loop and a Redis connection per message.

``async_to_sync(layer.group_send)(…)`` in a thread with no event loop of its own starts a new loop for the one
call, and channels_redis keeps its connections per loop (``RedisChannelLayer._layers[loop]``), so every live inbox
update or pushed chat frame paid a loop, a Redis connection and its teardown (~9 ms on the 2-core machine; 48 of
50 connections dropped in ``bench/profile_hot_paths.py``). :func:`group_send` instead runs the coroutine on one
event loop per process, in a daemon thread started on first use (and again in a forked child: the parent's
thread does not survive ``fork``), whose channels_redis connections persist between sends.
"""

from __future__ import annotations

import asyncio
import os
import threading

from channels.layers import get_channel_layer

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0


def _sender_loop() -> asyncio.AbstractEventLoop:
    """This process's sender loop, started if missing (or inherited dead from a parent by ``fork``)."""
    global _loop, _loop_pid
    with _lock:
        if _loop is None or _loop_pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="channel-layer-sender", daemon=True).start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


def group_send(group: str, message: dict, *, timeout: float = 5.0) -> bool:
    """Send ``message`` to the Channels ``group`` and wait for it (at most ``timeout`` seconds); False when no
    channel layer is configured. Raises what the layer raises (e.g. Redis down) or ``TimeoutError``. Never call
    it from a coroutine: ``await layer.group_send`` there."""
    layer = get_channel_layer()
    if layer is None:
        return False
    future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), _sender_loop())
    try:
        future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise
    return True
