"""Opening hours on the phone (``channels_app.voice.hours``): windows are ``[start, end)`` in the tenant's time
zone, and ``"24:00"`` ends a window at midnight, so ``["00:00", "24:00"]`` is open around the clock."""

from __future__ import annotations

from datetime import datetime

import pytest

from channels_app.voice.hours import is_after_hours
from conversations.models import AgentSettings

pytestmark = pytest.mark.django_db
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MONDAY = (2026, 3, 2)  # fixed dates: the answer may not depend on when the test runs


def _at(tenant, hour, minute=0, second=0, *, day=MONDAY):
    return datetime(*day, hour, minute, second, tzinfo=tenant.tzinfo)


def test_open_all_day_has_no_closed_second(tenant):
    AgentSettings.objects.create(tenant=tenant, bookable_hours={d: [["00:00", "24:00"]] for d in WEEK})
    for hour, minute, second in [(0, 0, 0), (12, 0, 0), (23, 59, 0), (23, 59, 59)]:
        assert not is_after_hours(tenant, _at(tenant, hour, minute, second)), (hour, minute, second)


def test_window_end_is_exclusive_and_24_00_stops_at_midnight(tenant):
    AgentSettings.objects.create(tenant=tenant, bookable_hours={"mon": [["09:00", "17:00"], ["22:00", "24:00"]]})
    assert is_after_hours(tenant, _at(tenant, 8, 59, 59))
    assert not is_after_hours(tenant, _at(tenant, 9))
    assert not is_after_hours(tenant, _at(tenant, 16, 59, 59))
    assert is_after_hours(tenant, _at(tenant, 17))
    assert not is_after_hours(tenant, _at(tenant, 23, 59, 59))
    assert is_after_hours(tenant, _at(tenant, 0, day=(2026, 3, 3)))  # Tuesday has no window: closed from midnight


def test_hours_are_the_tenants_local_time(tenant):
    AgentSettings.objects.create(tenant=tenant, bookable_hours={d: [["09:00", "17:00"]] for d in WEEK})
    noon_in_new_york = _at(tenant, 12)
    tenant.timezone = "Asia/Tokyo"  # 02:00 the next day there
    assert is_after_hours(tenant, noon_in_new_york)
