"""Bookable hours: a window may end at ``"24:00"`` (midnight), so the last slot of the day ends at midnight and
``["00:00", "24:00"]`` makes the whole day bookable; nothing spills into the next day."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conversations.appointments import BookingError, appointment_book, availability
from conversations.models import AgentSettings
from tests.clock import local, next_weekday

pytestmark = pytest.mark.django_db
WEDNESDAY = 2


def test_window_ending_at_24_00_offers_slots_up_to_midnight(tenant, customer):
    AgentSettings.objects.create(tenant=tenant, bookable_hours={"wed": [["22:00", "24:00"]]})
    day = next_weekday(tenant, WEDNESDAY)
    assert availability(tenant=tenant, day=day) == [
        local(tenant, day, h, m) for h, m in [(22, 0), (22, 30), (23, 0), (23, 30)]
    ]
    last = appointment_book(tenant=tenant, customer=customer, starts_at=local(tenant, day, 23, 30))
    assert last.ends_at == local(tenant, day + timedelta(days=1), 0)
    with pytest.raises(BookingError) as caught:  # Thursday has no window: midnight is not bookable
        appointment_book(tenant=tenant, customer=customer, starts_at=local(tenant, day + timedelta(days=1), 0))
    assert caught.value.code == "outside_hours"


def test_00_00_to_24_00_is_the_whole_day(tenant):
    AgentSettings.objects.create(tenant=tenant, bookable_hours={"wed": [["00:00", "24:00"]]})
    day = next_weekday(tenant, WEDNESDAY)
    the_day_before_noon = local(tenant, day - timedelta(days=1), 12)  # the minimum notice takes no slot away
    slots = availability(tenant=tenant, day=day, now=the_day_before_noon)
    assert len(slots) == 48 and slots[0] == local(tenant, day, 0) and slots[-1] == local(tenant, day, 23, 30)
