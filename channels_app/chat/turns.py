"""Where the chat websocket runs its database work: a bounded thread pool per web process.

Channels' ``database_sync_to_async`` runs every call on ONE thread per process (``thread_sensitive=True``), so
each visitor's agent turn waited for every other visitor's (50 visitors: 2.5 s p99 for a 60 ms turn). Chat turns
touch no thread-bound state beyond Django's per-thread database connection, so they run here instead, on
``CHAT_TURN_THREADS`` threads (default: half of ``ASGI_THREADS``, at least 2 — the other half stays for HTTP views,
and both share the process's ``DB_POOL_MAX_SIZE`` connections). Calls beyond the pool wait in its queue; the
consumer sends the typing indicator before queueing, so the visitor sees at once that the turn is under way.
Each call closes stale connections before and after (as ``database_sync_to_async`` does), returning pooled
connections to the psycopg pool.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync


def _pool_size() -> int:
    explicit = os.environ.get("CHAT_TURN_THREADS")
    if explicit:
        return max(1, int(explicit))
    http_threads = int(os.environ.get("ASGI_THREADS") or 4 * (os.cpu_count() or 1))
    return max(2, http_threads // 2)


_executor = ThreadPoolExecutor(max_workers=_pool_size(), thread_name_prefix="chat-turn")


def in_turn_pool(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """``func`` as a coroutine function that runs on the chat turn pool with database connection hygiene.
    Exceptions raised by ``func`` propagate to the awaiting coroutine unchanged."""
    return DatabaseSyncToAsync(func, thread_sensitive=False, executor=_executor)
