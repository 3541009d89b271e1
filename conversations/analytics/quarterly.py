"""The quarterly review (product brief): per customer, per channel, per week — average sentiment and count.

For a cohort of customers over the 90 days before ``end``. One grouped query over ``call_logs`` that walks the
(customer, -started_at) index once per cohort member.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db.models import Avg, Count
from django.db.models.functions import TruncWeek
from django.utils import timezone

from conversations.analytics.timeline import _as_date, _f
from conversations.models import Interaction
from identity.models import Tenant

QUARTER = timedelta(days=90)
MAX_COHORT = 500


def quarterly_review(
    *, tenant: Tenant, customer_ids: list[uuid.UUID | str], end: datetime | None = None, days: int = 90
) -> list[dict]:
    """Rows ``{"customer_id": UUID, "channel": str, "week_start": date, "count": int, "avg_sentiment":
    float | None}`` for ``customer_ids`` (at most 500; ids of other tenants simply match nothing).

    The window is ``[end - days, end)``, ``end`` defaulting to now; weeks start on Monday in the tenant's time
    zone; ``avg_sentiment`` (−1..1) averages scored interactions only. Ordered by customer, week, channel.
    Raises ValueError for an empty or oversized cohort.
    """
    if not customer_ids:
        raise ValueError("the cohort is empty")
    if len(customer_ids) > MAX_COHORT:
        raise ValueError(f"at most {MAX_COHORT} customers per request")
    end = end or timezone.now()
    start = end - timedelta(days=days)
    qs = (
        Interaction.objects.filter(
            tenant=tenant, customer_id__in=customer_ids, started_at__gte=start, started_at__lt=end
        )
        .annotate(week=TruncWeek("started_at", tzinfo=tenant.tzinfo))
        .values("customer_id", "channel", "week")
        .annotate(n=Count("id"), avg=Avg("sentiment"))
        .order_by("customer_id", "week", "channel")
    )
    return [
        {
            "customer_id": r["customer_id"],
            "channel": r["channel"],
            "week_start": _as_date(r["week"]),
            "count": r["n"],
            "avg_sentiment": _f(r["avg"]),
        }
        for r in qs
    ]
