"""The chat message rate limit counts per 60-second window opened by the visitor's first message (real Redis
through Django's cache), not per calendar minute: a burst that straddles a minute boundary stays one window."""

from __future__ import annotations

import uuid

from django.core.cache import cache

from channels_app.chat.consumer import rate_window_hit

MINUTE_BOUNDARY = 29_000_000 * 60.0  # a Unix time that is exactly a calendar minute


def test_a_burst_across_a_minute_boundary_is_one_window():
    key = f"test-rate:{uuid.uuid4().hex}"
    first = MINUTE_BOUNDARY - 0.5  # half a second before the minute turns
    assert rate_window_hit(key, now=first) == (1, 60)
    assert rate_window_hit(key, now=MINUTE_BOUNDARY + 1) == (2, 59)  # a calendar-minute counter would restart at 1
    assert rate_window_hit(key, now=first + 59.9) == (3, 1)


def test_a_new_window_starts_from_zero_when_the_last_one_ended():
    key = f"test-rate:{uuid.uuid4().hex}"
    for n in range(1, 4):
        assert rate_window_hit(key, now=1000.0)[0] == n
    cache.delete(key)  # what Redis does when the window's 60 seconds are over
    assert rate_window_hit(key, now=1070.0) == (1, 60)
    assert rate_window_hit(key, now=1071.0) == (2, 59)
