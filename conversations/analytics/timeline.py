"""Customer 360: every interaction of one customer across channels, with per-channel and weekly sentiment.

Reads only ``call_logs`` through the ``call_logs_customer_recent`` index (customer, -started_at), so one
customer's timeline costs the same with ten rows or ten million in the table.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Avg, Count
from django.db.models.functions import TruncWeek
from django.utils import timezone

from conversations.models import Interaction
from identity.models import Customer, Tenant

DEFAULT_WINDOW = timedelta(days=30)
MAX_LIMIT = 500


def _f(value: Decimal | float | None) -> float | None:
    return None if value is None else round(float(value), 4)


@dataclass
class Timeline:
    """The result of :func:`customer_timeline`.

    - ``interactions``: newest first, at most ``limit`` rows (``total`` counts all in range);
    - ``by_channel``: ``[{"channel", "count", "avg_sentiment"}]`` over the whole range, channel order;
    - ``weekly``: ``[{"week_start": date (Monday, tenant time zone), "count", "avg_sentiment"}]``, oldest
      first. ``avg_sentiment`` is −1..1 over scored rows only (None when none is scored).
    """

    customer: Customer
    start: datetime
    end: datetime
    total: int
    interactions: list[Interaction] = field(default_factory=list)
    by_channel: list[dict] = field(default_factory=list)
    weekly: list[dict] = field(default_factory=list)


def customer_timeline(
    *,
    tenant: Tenant,
    customer_id: uuid.UUID | str,
    channels: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 100,
) -> Timeline:
    """Customer 360 of ``customer_id`` in ``tenant`` between ``start`` (inclusive) and ``end`` (exclusive).

    Defaults: the last 30 days up to now. ``channels`` restricts to those channels. ``limit`` caps the rows
    returned (1..500). Raises :class:`identity.models.Customer.DoesNotExist` when the customer is not the
    tenant's (the API turns that into 404).
    """
    customer = Customer.objects.get(pk=customer_id, tenant=tenant)
    end = end or timezone.now()
    start = start or end - DEFAULT_WINDOW
    limit = max(1, min(int(limit), MAX_LIMIT))
    rows = Interaction.objects.filter(customer=customer, tenant=tenant, started_at__gte=start, started_at__lt=end)
    if channels:
        rows = rows.filter(channel__in=channels)
    # One heap pass for the usual case: when every row of the range fits in the page, the trends are computed
    # from the page itself; only a customer with more rows than ``limit`` pays for two index-only aggregates
    # (call_logs_customer_recent INCLUDEs tenant, channel and sentiment).
    page = list(rows.order_by("-started_at", "-id")[: limit + 1])
    for row in page:
        row.customer = customer  # the one customer, already loaded: its name is shown per row without a query
    if len(page) <= limit:
        by_channel, weekly = _trends_of(page, tenant.tzinfo)
        return Timeline(
            customer=customer,
            start=start,
            end=end,
            total=len(page),
            interactions=page,
            by_channel=by_channel,
            weekly=weekly,
        )
    by_channel = [
        {"channel": r["channel"], "count": r["n"], "avg_sentiment": _f(r["avg"])}
        for r in rows.order_by().values("channel").annotate(n=Count("id"), avg=Avg("sentiment")).order_by("channel")
    ]
    week = TruncWeek("started_at", tzinfo=tenant.tzinfo)
    weekly = [
        {"week_start": _as_date(r["week"]), "count": r["n"], "avg_sentiment": _f(r["avg"])}
        for r in rows.order_by()
        .annotate(week=week)
        .values("week")
        .annotate(n=Count("id"), avg=Avg("sentiment"))
        .order_by("week")
    ]
    total = sum(c["count"] for c in by_channel)
    return Timeline(
        customer=customer,
        start=start,
        end=end,
        total=total,
        interactions=page[:limit],
        by_channel=by_channel,
        weekly=weekly,
    )


def _trends_of(rows: list[Interaction], tz) -> tuple[list[dict], list[dict]]:
    """Per-channel and weekly (Monday, in ``tz``) counts and average sentiment of ``rows``, as SQL would."""
    groups: dict[tuple[str, object], list] = defaultdict(list)
    for row in rows:
        local_day = row.started_at.astimezone(tz).date()
        groups[("channel", row.channel)].append(row.sentiment)
        groups[("week", local_day - timedelta(days=local_day.weekday()))].append(row.sentiment)

    def summary(values: list) -> tuple[int, float | None]:
        scored = [v for v in values if v is not None]
        return len(values), _f(sum(scored) / len(scored)) if scored else None

    by_channel, weekly = [], []
    for (kind, key), values in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1])):
        count, avg = summary(values)
        target = by_channel if kind == "channel" else weekly
        target.append({"channel" if kind == "channel" else "week_start": key, "count": count, "avg_sentiment": avg})
    return by_channel, weekly


def _as_date(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value
