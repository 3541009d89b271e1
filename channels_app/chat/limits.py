"""Fixed-window counters in Redis (through Django's cache) for the chat channel's limits.

Used for the message rate per visitor (:meth:`channels_app.chat.consumer.ChatConsumer.over_rate_limit`) and the
verification codes per visitor, per target phone/email and per tenant (:mod:`channels_app.chat.verification`).
"""

from __future__ import annotations

import math

from django.core.cache import cache

RATE_WINDOW_SECONDS = 60


def rate_window_hit(key: str, *, now: float, window: int = RATE_WINDOW_SECONDS) -> tuple[int, int]:
    """Count one event against ``key``'s fixed window; return (events in the window so far, seconds until the
    window ends, at least 1).

    A window starts at the first event after the previous window ended and lasts ``window`` seconds: the cache
    key ``key`` holds its start (Unix seconds, ``now`` of that first event) and expires with it; the events are
    counted under ``<key>:<start>`` (``cache.add`` then ``cache.incr``, atomic in Redis), so a new window never
    inherits the previous window's count. Synchronous (Django cache): call it from async code through a thread
    (``database_sync_to_async``), as :meth:`~channels_app.chat.consumer.ChatConsumer.over_rate_limit` does.
    """
    for _ in range(3):
        cache.add(key, now, window)
        start = cache.get(key)
        if start is None:  # the window ended between the two calls: the next event opens a new one
            continue
        counter = f"{key}:{start!r}"
        cache.add(counter, 0, window + 10)  # outlives its window's start key, so incr finds it
        try:
            count = cache.incr(counter)
        except ValueError:  # evicted meanwhile
            continue
        return count, min(window, max(1, math.ceil(start + window - now)))  # clamped: clocks of web processes differ
    return 1, window
