"""Calendar helpers for tests: local dates and wall-clock times in a tenant's time zone.

A test that asks the agent for "Tuesday" and then computes "next Tuesday" itself can disagree with the agent when
the run crosses local midnight in between; ``next_weekdays_since`` gives every answer "next Tuesday" had over that
span, so assertions stay exact without depending on the clock.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.utils import timezone


def next_weekday(tenant, weekday: int, now: datetime | None = None) -> date:
    """The next local date after today (tenant time zone, today as of ``now``, default: now) falling on
    ``weekday`` (0 = Monday)."""
    today = (now or timezone.now()).astimezone(tenant.tzinfo).date()
    return today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)


def next_weekdays_since(tenant, weekday: int, since: datetime) -> set[date]:
    """Every value :func:`next_weekday` took between ``since`` (aware) and now: one date, or two when local
    midnight into ``weekday`` passed in between (it changes only then)."""
    return {next_weekday(tenant, weekday, since), next_weekday(tenant, weekday)}


def local(tenant, day: date, hour: int, minute: int = 0) -> datetime:
    """``day`` at ``hour:minute`` wall-clock time in the tenant's time zone (aware)."""
    return datetime.combine(day, time(hour, minute), tenant.tzinfo)
