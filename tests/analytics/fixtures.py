"""A small, hand-checkable data set for the Customer 360 and quarterly-review tests (America/New_York tenant)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tests.factories import ConversationFactory, CustomerFactory, InteractionFactory

UTC = UTC
END = datetime(2026, 3, 20, tzinfo=UTC)


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def build(tenant, other_tenant) -> dict:
    """Customer A: 5 interactions in the 30 days before END, one 90 days back, one older; B: one; other tenant: one.

    Week boundaries are local (New York, UTC-5 / UTC-4 after 2026-03-08): 2026-03-09 03:00 UTC is Sunday
    2026-03-08 23:00 local, so it belongs to the week of Monday 2026-03-02, not 2026-03-09.
    """
    a = CustomerFactory(tenant=tenant, display_name="Ada")
    b = CustomerFactory(tenant=tenant, display_name="Bob")
    conv_a = ConversationFactory(customer=a, tenant=tenant)
    conv_b = ConversationFactory(customer=b, tenant=tenant)

    def row(conv, channel, started, sentiment, **kw):
        return InteractionFactory(
            conversation=conv,
            channel=channel,
            started_at=started,
            last_activity_at=started,
            ended_at=started,
            sentiment=None if sentiment is None else Decimal(sentiment),
            **kw,
        )

    rows = {
        "i1": row(conv_a, "sms", at(2026, 3, 2, 15), "0.5"),
        "i2": row(conv_a, "voice", at(2026, 3, 3, 15), "-0.25", escalated=True),
        "i3": row(conv_a, "sms", at(2026, 3, 9, 3), "0.1"),
        "i4": row(conv_a, "chat", at(2026, 3, 10, 15), None),
        "i5": row(conv_a, "sms", at(2026, 3, 11, 15), "0.3"),
        "edge": row(conv_a, "sms", at(2025, 12, 20), "-0.5"),  # exactly END - 90 days: inside the quarter
        "old": row(conv_a, "sms", at(2025, 11, 1), "-1"),
        "b1": row(conv_b, "voice", at(2026, 3, 5, 12), "1"),
    }
    foreign = CustomerFactory(tenant=other_tenant, display_name="Eve")
    rows["foreign_i"] = row(ConversationFactory(customer=foreign, tenant=other_tenant), "sms", at(2026, 3, 4), "0.9")
    return {"a": a, "b": b, "foreign": foreign, **rows}
