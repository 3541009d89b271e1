"""The numbers behind the admin dashboards, per tenant and date range, bucketed by day or week.

Every function takes ``tenant``, ``start`` (inclusive) and ``end`` (exclusive) as aware datetimes and returns a
list of flat dicts (one CSV row each), oldest bucket first. Buckets are local days or Monday-weeks in the
tenant's time zone (:func:`bucket_for`). Definitions:

- sentiment trend: mean ``sentiment`` (−1..1) of scored interactions, per bucket and channel;
- channel mix: interactions per bucket and channel;
- escalation rate: escalated / all interactions per bucket;
- lead conversion: distinct customers with a lead interaction in the bucket (``lead_score`` ≥
  :data:`LEAD_SCORE_THRESHOLD` or an intent listed in ``tenant.lead_intents``), and how many of them booked an
  appointment (created within :data:`CONVERSION_WINDOW` after that interaction started);
- CSAT: answers and mean ``satisfaction`` (1–5) per bucket, with the count of each score, and the same split by
  source: ``survey`` (the patient answered the survey) and ``inferred`` (enrichment's guess from sentiment);
- response times: seconds from a customer turn to the next agent/staff turn in the same interaction
  (transcript ``at`` stamps), median and 90th percentile per bucket and channel;
- dropped calls (always per week): inbound calls that ended mid-booking — their intent was booking or moving an
  appointment and no appointment of the caller was booked or moved during the call — and how many of them were
  completed on another channel within :data:`DROPPED_CALL_WINDOW`: the caller's appointment was booked or moved
  after the call, and the caller had a chat, SMS or email session in that window.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Avg, Count, Exists, OuterRef, Q
from django.db.models.functions import Trunc

from conversations.analytics.timeline import _as_date, _f
from conversations.models import Appointment, Interaction
from identity.models import Tenant

LEAD_SCORE_THRESHOLD = 50
CONVERSION_WINDOW = timedelta(days=30)
CHARTS = ["sentiment", "channel_mix", "escalation_rate", "lead_conversion", "csat", "response_times", "dropped_calls"]
DROPPED_CALL_WINDOW = timedelta(hours=24)
BOOKING_INTENTS = ("book_appointment", "reschedule_appointment")


def bucket_for(start: datetime, end: datetime) -> str:
    """``"day"`` for ranges up to 62 days, else ``"week"``."""
    return "day" if end - start <= timedelta(days=62) else "week"


def _rows(tenant: Tenant, start: datetime, end: datetime):
    return Interaction.objects.filter(tenant=tenant, started_at__gte=start, started_at__lt=end).order_by()


def _bucket(tenant: Tenant, kind: str):
    return Trunc("started_at", kind, tzinfo=tenant.tzinfo)


def sentiment_trend(*, tenant: Tenant, start: datetime, end: datetime, bucket: str = "day") -> list[dict]:
    """``[{"bucket": date, "channel", "scored", "avg_sentiment"}]``."""
    qs = (
        _rows(tenant, start, end)
        .filter(sentiment__isnull=False)
        .annotate(b=_bucket(tenant, bucket))
        .values("b", "channel")
        .annotate(n=Count("id"), avg=Avg("sentiment"))
        .order_by("b", "channel")
    )
    return [
        {"bucket": _as_date(r["b"]), "channel": r["channel"], "scored": r["n"], "avg_sentiment": _f(r["avg"])}
        for r in qs
    ]


def channel_mix(*, tenant: Tenant, start: datetime, end: datetime, bucket: str = "day") -> list[dict]:
    """``[{"bucket": date, "channel", "interactions"}]``."""
    qs = (
        _rows(tenant, start, end)
        .annotate(b=_bucket(tenant, bucket))
        .values("b", "channel")
        .annotate(n=Count("id"))
        .order_by("b", "channel")
    )
    return [{"bucket": _as_date(r["b"]), "channel": r["channel"], "interactions": r["n"]} for r in qs]


def escalation_rate(*, tenant: Tenant, start: datetime, end: datetime, bucket: str = "day") -> list[dict]:
    """``[{"bucket": date, "interactions", "escalated", "rate"}]`` (rate 0..1, 4 decimals)."""
    qs = (
        _rows(tenant, start, end)
        .annotate(b=_bucket(tenant, bucket))
        .values("b")
        .annotate(n=Count("id"), e=Count("id", filter=Q(escalated=True)))
        .order_by("b")
    )
    return [
        {
            "bucket": _as_date(r["b"]),
            "interactions": r["n"],
            "escalated": r["e"],
            "rate": round(r["e"] / r["n"], 4) if r["n"] else 0.0,
        }
        for r in qs
    ]


def lead_conversion(*, tenant: Tenant, start: datetime, end: datetime, bucket: str = "day") -> list[dict]:
    """``[{"bucket": date, "leads", "booked", "rate"}]``: distinct lead customers and those who booked."""
    lead = Q(lead_score__gte=LEAD_SCORE_THRESHOLD)
    if tenant.lead_intents:
        lead |= Q(intent__in=list(tenant.lead_intents))
    booked = Appointment.objects.filter(
        tenant=tenant,
        customer_id=OuterRef("customer_id"),
        created_at__gte=OuterRef("started_at"),
        created_at__lt=OuterRef("started_at") + CONVERSION_WINDOW,
    )
    qs = (
        _rows(tenant, start, end)
        .filter(lead)
        .annotate(b=_bucket(tenant, bucket), booked=Exists(booked))
        .values("b")
        .annotate(
            leads=Count("customer_id", distinct=True), won=Count("customer_id", distinct=True, filter=Q(booked=True))
        )
        .order_by("b")
    )
    return [
        {
            "bucket": _as_date(r["b"]),
            "leads": r["leads"],
            "booked": r["won"],
            "rate": round(r["won"] / r["leads"], 4) if r["leads"] else 0.0,
        }
        for r in qs
    ]


def csat(*, tenant: Tenant, start: datetime, end: datetime, bucket: str = "day") -> list[dict]:
    """``[{"bucket": date, "answers", "avg_csat", "csat_1".."csat_5", "survey_answers", "avg_survey",
    "inferred_answers", "avg_inferred"}]`` over interactions with a score."""
    per_score: dict = {f"csat_{i}": Count("id", filter=Q(satisfaction=i)) for i in range(1, 6)}
    by_source = {
        "survey_answers": Count("id", filter=Q(satisfaction_source="survey")),
        "avg_survey": Avg("satisfaction", filter=Q(satisfaction_source="survey")),
        "inferred_answers": Count("id", filter=~Q(satisfaction_source="survey")),
        "avg_inferred": Avg("satisfaction", filter=~Q(satisfaction_source="survey")),
    }
    qs = (
        _rows(tenant, start, end)
        .filter(satisfaction__isnull=False)
        .annotate(b=_bucket(tenant, bucket))
        .values("b")
        .annotate(n=Count("id"), avg=Avg("satisfaction"), **per_score, **by_source)
        .order_by("b")
    )
    return [
        {
            "bucket": _as_date(r["b"]),
            "answers": r["n"],
            "avg_csat": _f(r["avg"]),
            **{k: r[k] for k in per_score},
            "survey_answers": r["survey_answers"],
            "avg_survey": _f(r["avg_survey"]),
            "inferred_answers": r["inferred_answers"],
            "avg_inferred": _f(r["avg_inferred"]),
        }
        for r in qs
    ]


_RESPONSE_SQL = """
WITH turns AS (
    SELECT c.id, c.channel, date_trunc(%(bucket)s, c.started_at AT TIME ZONE %(tz)s) AS b, t.ord,
           t.turn->>'role' AS role, (t.turn->>'at')::timestamptz AS at
    FROM call_logs c
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(c.transcript) = 'array' THEN c.transcript ELSE '[]'::jsonb END
    ) WITH ORDINALITY AS t(turn, ord)
    WHERE c.tenant_id = %(tenant)s AND c.started_at >= %(start)s AND c.started_at < %(end)s
      AND jsonb_typeof(t.turn) = 'object' AND t.turn ? 'at'
), paired AS (
    SELECT b, channel, role, at,
           lag(role) OVER (PARTITION BY id ORDER BY ord) AS prev_role,
           lag(at) OVER (PARTITION BY id ORDER BY ord) AS prev_at
    FROM turns
)
SELECT b, channel, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM at - prev_at)),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM at - prev_at))
FROM paired
WHERE role IN ('agent', 'staff') AND prev_role = 'customer' AND at >= prev_at
GROUP BY b, channel ORDER BY b, channel
"""


def response_times(*, tenant: Tenant, start: datetime, end: datetime, bucket: str = "day") -> list[dict]:
    """``[{"bucket": date, "channel", "replies", "median_seconds", "p90_seconds"}]``."""
    with connection.cursor() as cursor:
        cursor.execute(
            _RESPONSE_SQL, {"bucket": bucket, "tz": tenant.timezone, "tenant": tenant.pk, "start": start, "end": end}
        )
        rows = cursor.fetchall()
    return [
        {
            "bucket": _as_date(b),
            "channel": ch,
            "replies": n,
            "median_seconds": round(p50, 1),
            "p90_seconds": round(p90, 1),
        }
        for b, ch, n, p50, p90 in rows
    ]


def dropped_calls(*, tenant: Tenant, start: datetime, end: datetime, bucket: str = "week") -> list[dict]:
    """``[{"bucket": week date, "dropped_calls", "completed_elsewhere", "rate"}]`` (rate 0..1, 4 decimals), per
    local Monday-week whatever ``bucket`` says (the metric is weekly). See the module docstring."""
    in_call = Appointment.objects.filter(
        tenant=tenant,
        customer_id=OuterRef("customer_id"),
        updated_at__gte=OuterRef("started_at"),
        updated_at__lte=OuterRef("ended_at") + timedelta(minutes=2),
    )
    after = {"updated_at__gt": OuterRef("ended_at"), "updated_at__lte": OuterRef("ended_at") + DROPPED_CALL_WINDOW}
    booked_after = Appointment.objects.filter(
        tenant=tenant, customer_id=OuterRef("customer_id"), status=Appointment.Status.BOOKED, **after
    )
    elsewhere = Interaction.objects.filter(
        tenant=tenant,
        customer_id=OuterRef("customer_id"),
        channel__in=["chat", "sms", "email"],
        started_at__gt=OuterRef("ended_at"),
        started_at__lte=OuterRef("ended_at") + DROPPED_CALL_WINDOW,
    )
    qs = (
        _rows(tenant, start, end)
        .filter(channel="voice", direction="inbound", ended_at__isnull=False, intent__in=BOOKING_INTENTS)
        .exclude(Exists(in_call))
        .annotate(b=_bucket(tenant, "week"), completed=Exists(booked_after) & Exists(elsewhere))
        .values("b")
        .annotate(n=Count("id"), done=Count("id", filter=Q(completed=True)))
        .order_by("b")
    )
    return [
        {
            "bucket": _as_date(r["b"]),
            "dropped_calls": r["n"],
            "completed_elsewhere": r["done"],
            "rate": round(r["done"] / r["n"], 4) if r["n"] else 0.0,
        }
        for r in qs
    ]


def chart_rows(chart: str, *, tenant: Tenant, start: datetime, end: datetime, bucket: str) -> list[dict]:
    """Rows of one chart by name (one of :data:`CHARTS`); raises KeyError for an unknown name."""
    fn = {
        "sentiment": sentiment_trend,
        "channel_mix": channel_mix,
        "escalation_rate": escalation_rate,
        "lead_conversion": lead_conversion,
        "csat": csat,
        "response_times": response_times,
        "dropped_calls": dropped_calls,
    }[chart]
    return fn(tenant=tenant, start=start, end=end, bucket=bucket)


__all__ = [
    "CHARTS",
    "bucket_for",
    "chart_rows",
    "channel_mix",
    "csat",
    "dropped_calls",
    "escalation_rate",
    "lead_conversion",
    "response_times",
    "sentiment_trend",
]
