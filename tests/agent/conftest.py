"""Fixtures for agent tests: a customer with a phone, and sessions on any channel in one conversation."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from django.utils import timezone

from conversations.services import session_open
from identity.services import customer_resolve

PATIENT = "+15551230001"


def next_weekday(tenant, weekday: int, now: datetime | None = None) -> date:
    """The next local date after today (tenant time zone) falling on ``weekday`` (0 = Monday)."""
    today = (now or timezone.now()).astimezone(tenant.tzinfo).date()
    return today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)


def local(tenant, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tenant.tzinfo)


@pytest.fixture
def customer(tenant):
    return customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer


@pytest.fixture
def open_session(tenant, customer):
    def open_(channel: str = "sms", **metadata):
        interaction, _ = session_open(tenant=tenant, customer=customer, channel=channel, metadata=metadata or None)
        return interaction

    return open_
