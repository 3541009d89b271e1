"""Rate limits of the chat channel, counted in Redis by the `limits` library (fixed windows).

A window opens with the first event of its key and lasts its period (limits' Redis fixed window: ``INCR`` and an
``EXPIRE`` set by the first hit), so a reconnect does not reset it and a burst across a calendar minute is one
window. Used for chat messages — per visitor, per client IP and per tenant, so new visitor ids from one place
cannot multiply the allowance (:meth:`channels_app.chat.consumer.ChatConsumer.over_rate_limit`) — and for the
verification codes per visitor, per target and per tenant (:mod:`channels_app.chat.verification`).
Synchronous (redis-py): call it from async code through a thread.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

from django.conf import settings
from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter


@dataclass(frozen=True)
class Limit:
    """``amount`` events per ``seconds`` for ``key`` (a string; no secret in it: it is a Redis key)."""

    key: str
    amount: int
    seconds: int


@functools.cache
def _limiter(url: str) -> FixedWindowRateLimiter:
    if url.startswith("unix://"):  # redis-py's spelling of the embedded server's socket; limits wants redis+unix
        url = "redis+unix://" + url[len("unix://") :]
    return FixedWindowRateLimiter(RedisStorage(url))


def limiter() -> FixedWindowRateLimiter:
    return _limiter(settings.REDIS_URL)


def limits_hit(*checks: Limit) -> tuple[Limit, int] | None:
    """Count one event against each limit in order; at the first that is full, stop (the event is not counted
    further on) and return it with the seconds until its window ends (at least 1). None: every limit allowed it."""
    rate_limiter = limiter()
    for check in checks:
        item = RateLimitItemPerSecond(check.amount, check.seconds)
        if not rate_limiter.hit(item, check.key):
            reset_at, _ = rate_limiter.get_window_stats(item, check.key)
            return check, min(check.seconds, max(1, math.ceil(reset_at - time.time())))
    return None
