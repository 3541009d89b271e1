"""Customer 360 timeline and the quarterly review against hand-checked numbers."""

from datetime import date

import pytest

from conversations.analytics.quarterly import quarterly_review
from conversations.analytics.timeline import customer_timeline
from identity.models import Customer
from tests.analytics.fixtures import END, build

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(tenant, other_tenant):
    return build(tenant, other_tenant)


def test_timeline_last_30_days_all_channels(tenant, data):
    t = customer_timeline(tenant=tenant, customer_id=data["a"].id, end=END)
    assert t.total == 5
    assert [i.id for i in t.interactions] == [data[k].id for k in ("i5", "i4", "i3", "i2", "i1")]
    assert t.by_channel == [
        {"channel": "chat", "count": 1, "avg_sentiment": None},
        {"channel": "sms", "count": 3, "avg_sentiment": 0.3},
        {"channel": "voice", "count": 1, "avg_sentiment": -0.25},
    ]
    # (0.5 - 0.25 + 0.1) / 3 — i3 is Sunday night in New York, so it is in the week of 2 March
    assert t.weekly == [
        {"week_start": date(2026, 3, 2), "count": 3, "avg_sentiment": 0.1167},
        {"week_start": date(2026, 3, 9), "count": 2, "avg_sentiment": 0.3},
    ]


def test_timeline_channel_and_range_filters(tenant, data):
    t = customer_timeline(tenant=tenant, customer_id=data["a"].id, channels=["sms"], end=END)
    assert [i.id for i in t.interactions] == [data["i5"].id, data["i3"].id, data["i1"].id]
    assert t.weekly == [
        {"week_start": date(2026, 3, 2), "count": 2, "avg_sentiment": 0.3},
        {"week_start": date(2026, 3, 9), "count": 1, "avg_sentiment": 0.3},
    ]
    t = customer_timeline(
        tenant=tenant, customer_id=data["a"].id, start=data["i2"].started_at, end=data["i4"].started_at, limit=1
    )
    assert t.total == 2 and [i.id for i in t.interactions] == [data["i3"].id]


@pytest.mark.parametrize("limit", [1, 2, 4])
def test_trends_are_the_same_whether_the_page_holds_every_row_or_not(tenant, data, limit):
    """Pages smaller than the range use SQL aggregates; a full page computes them in Python — same numbers."""
    full = customer_timeline(tenant=tenant, customer_id=data["a"].id, end=END)
    partial = customer_timeline(tenant=tenant, customer_id=data["a"].id, end=END, limit=limit)
    assert (partial.total, partial.by_channel, partial.weekly) == (full.total, full.by_channel, full.weekly)
    assert [i.id for i in partial.interactions] == [i.id for i in full.interactions][:limit]


def test_timeline_of_another_tenants_customer_is_not_found(tenant, data):
    with pytest.raises(Customer.DoesNotExist):
        customer_timeline(tenant=tenant, customer_id=data["foreign"].id, end=END)


def test_quarterly_review_per_customer_channel_week(tenant, data):
    rows = quarterly_review(tenant=tenant, customer_ids=[data["a"].id, data["b"].id], end=END)
    a, b = data["a"].id, data["b"].id
    expected = sorted(
        [
            (a, "sms", date(2025, 12, 15), 1, -0.5),  # the boundary row (Friday 19:00 local)
            (a, "sms", date(2026, 3, 2), 2, 0.3),
            (a, "voice", date(2026, 3, 2), 1, -0.25),
            (a, "chat", date(2026, 3, 9), 1, None),
            (a, "sms", date(2026, 3, 9), 1, 0.3),
            (b, "voice", date(2026, 3, 2), 1, 1.0),
        ],
        key=lambda r: (str(r[0]), r[2], r[1]),
    )
    got = [(r["customer_id"], r["channel"], r["week_start"], r["count"], r["avg_sentiment"]) for r in rows]
    assert sorted(got, key=lambda r: (str(r[0]), r[2], r[1])) == expected
    assert got == sorted(got, key=lambda r: (r[0], r[2], r[1]))  # documented order


def test_quarterly_review_ignores_other_tenants_ids(tenant, data):
    assert quarterly_review(tenant=tenant, customer_ids=[data["foreign"].id], end=END) == []
    with pytest.raises(ValueError):
        quarterly_review(tenant=tenant, customer_ids=[], end=END)
