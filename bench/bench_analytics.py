"""Benchmark: Customer 360 timeline, quarterly review and streaming export on a large ``call_logs``.

Works in its own database ``callsphere_bench`` on the same PostgreSQL (never the test or dev database). The
data set is generated once in SQL (``INSERT … SELECT generate_series``) and kept for later runs: BENCH_ROWS
interactions (default 10,000,000) of BENCH_CUSTOMERS customers (default 100,000) of one tenant, spread over
365 days and four channels. Reports:

1. the timeline query (``customer_timeline``: rows + per-channel + weekly trend) for one customer — p50/p95
   over 200 random customers, 30-day default window and a 365-day window;
2. the quarterly review for a cohort of 50 customers over 90 days — p50/p95 over 30 cohorts;
3. export throughput of the CSV and NDJSON streams (rows/s over BENCH_EXPORT_ROWS rows) and the process's
   peak RSS growth while streaming.

Run: ``.venv/bin/python bench/bench_analytics.py`` (or ``make bench``). ``BENCH_ROWS`` makes it smaller.
"""

from __future__ import annotations

import gc
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings_test")

import django  # noqa: E402

django.setup()

import psutil  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.utils import timezone  # noqa: E402

BENCH_DB = "callsphere_bench"
ROWS = int(os.environ.get("BENCH_ROWS", "10000000"))
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "100000"))
EXPORT_ROWS = int(os.environ.get("BENCH_EXPORT_ROWS", "500000"))
BATCH = 1_000_000


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def use_bench_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{BENCH_DB}"')
    connections["default"].close()
    connections["default"].settings_dict["NAME"] = BENCH_DB
    call_command("migrate", verbosity=0)


def ensure_data():
    from conversations.models import Interaction
    from identity.models import Tenant

    tenant, _ = Tenant.objects.get_or_create(
        slug="bench", defaults={"name": "Bench", "short_name": "Bench", "timezone": "America/New_York"}
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'call_logs'")
        estimate = cursor.fetchone()[0]
    have = Interaction.objects.filter(tenant=tenant).count() if estimate < 2 * ROWS else estimate
    if have >= ROWS:
        print(f"data: {have:,} call_logs rows already present")
        return tenant
    print(f"data: generating {ROWS:,} call_logs rows for {CUSTOMERS:,} customers (once; kept for later runs)")
    t0 = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM call_logs WHERE tenant_id = %s", [tenant.pk])
        cursor.execute("DELETE FROM conversations_conversation WHERE tenant_id = %s", [tenant.pk])
        cursor.execute("DELETE FROM identity_customer WHERE tenant_id = %s", [tenant.pk])
        cursor.execute(
            """
            INSERT INTO identity_customer (id, tenant_id, display_name, legal_hold, memory_opt_out, visit_reason,
                                           preferred_language, created_at, updated_at)
            SELECT md5('c' || g)::uuid, %s, 'Customer ' || g, '', false, '', '', now(), now()
            FROM generate_series(1, %s) g""",
            [tenant.pk, CUSTOMERS],
        )
        cursor.execute(
            """
            INSERT INTO conversations_conversation (id, tenant_id, customer_id, status, opened_at, closed_at,
                                                    last_activity_at)
            SELECT md5('v' || g)::uuid, %s, md5('c' || g)::uuid, 'closed', now() - interval '365 days', now(), now()
            FROM generate_series(1, %s) g""",
            [tenant.pk, CUSTOMERS],
        )
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'call_logs' "
            "AND indexdef NOT LIKE '%%UNIQUE%%' AND indexname NOT LIKE '%%pkey'"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        try:
            _load(cursor, tenant, t0)
        finally:  # never leave the table without its indexes
            for name, definition in indexes:
                cursor.execute(definition)
                print(f"  index {name} ({time.monotonic() - t0:.0f} s)", flush=True)
        cursor.execute("ANALYZE call_logs")
    print(f"data: done in {time.monotonic() - t0:.0f} s")
    return tenant


def _load(cursor, tenant, t0: float) -> None:
    for start in range(0, ROWS, BATCH):
        n = min(BATCH, ROWS - start)
        cursor.execute(
            """
            INSERT INTO call_logs (id, tenant_id, customer_id, conversation_id, channel, direction, started_at,
                ended_at, last_activity_at, transcript, sentiment, lead_score, intent, satisfaction, escalated,
                metadata, enrichment_backend, enrichment_model, enrichment_version, enriched_at, updated_at)
            SELECT gen_random_uuid(), %(tenant)s, md5('c' || c)::uuid, md5('v' || c)::uuid,
                   (ARRAY['voice','chat','sms','email'])[1 + g %% 4], 'inbound', ts, ts + interval '3 minutes',
                   ts + interval '3 minutes',
                   jsonb_build_array(jsonb_build_object('role', 'customer', 'text', 'hello', 'at', ts),
                                     jsonb_build_object('role', 'agent', 'text', 'hi!', 'at', ts + interval '20 s')),
                   round((random() * 2 - 1)::numeric, 4), (g %% 101), 'book_appointment', 1 + g %% 5,
                   g %% 50 = 0, '{}'::jsonb, 'local', 'vader', '1', ts, ts
            FROM (SELECT g, 1 + (g * 7919) %% %(customers)s AS c,
                         now() - make_interval(secs => (g * 104729) %% 31536000) AS ts
                  FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g) s""",
            {"tenant": tenant.pk, "customers": CUSTOMERS, "lo": start + 1, "hi": start + n},
        )
        print(f"  {start + n:,} rows ({time.monotonic() - t0:.0f} s)", flush=True)


def bench_timeline(tenant) -> None:
    from conversations.analytics.timeline import customer_timeline
    from identity.models import Customer

    ids = list(Customer.objects.filter(tenant=tenant).values_list("pk", flat=True)[:5000])
    rng = random.Random(7)
    for window in (timedelta(days=30), timedelta(days=365)):
        times, totals = [], []
        for i in range(220):
            cid = rng.choice(ids)
            t0 = time.perf_counter()
            t = customer_timeline(tenant=tenant, customer_id=cid, start=timezone.now() - window, limit=100)
            elapsed = (time.perf_counter() - t0) * 1000
            if i >= 20:  # warm-up
                times.append(elapsed)
                totals.append(t.total)
        print(
            f"timeline ({window.days} days, ~{statistics.mean(totals):.0f} interactions/customer): "
            f"p50 {pct(times, 50):.2f} ms, p95 {pct(times, 95):.2f} ms, max {max(times):.2f} ms"
        )


def bench_quarterly(tenant) -> None:
    from conversations.analytics.quarterly import quarterly_review
    from identity.models import Customer

    ids = list(Customer.objects.filter(tenant=tenant).values_list("pk", flat=True)[:5000])
    rng = random.Random(11)
    times, rows = [], []
    for i in range(35):
        cohort = rng.sample(ids, 50)
        t0 = time.perf_counter()
        result = quarterly_review(tenant=tenant, customer_ids=cohort)
        elapsed = (time.perf_counter() - t0) * 1000
        if i >= 5:
            times.append(elapsed)
            rows.append(len(result))
    print(
        f"quarterly review (50 customers, 90 days, ~{statistics.mean(rows):.0f} result rows): "
        f"p50 {pct(times, 50):.1f} ms, p95 {pct(times, 95):.1f} ms"
    )


def bench_export(tenant) -> None:
    from conversations.api.export import export_chunks
    from conversations.api.views import InteractionViewSet
    from conversations.models import Interaction

    # a date range holding about EXPORT_ROWS rows of the tenant
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM call_logs WHERE tenant_id = %s", [tenant.pk])
        total = cursor.fetchone()[0]
    days = max(1, min(365, int(365 * EXPORT_ROWS / max(total, 1))))
    qs = Interaction.objects.filter(tenant=tenant, started_at__gte=timezone.now() - timedelta(days=days))
    process = psutil.Process()
    for fmt in ("csv", "ndjson"):
        gc.collect()
        base = peak = process.memory_info().rss
        lines = size = 0
        t0 = time.perf_counter()
        for chunk in export_chunks(qs, InteractionViewSet.export_spec, fmt):
            lines += chunk.count(b"\n")
            size += len(chunk)
            peak = max(peak, process.memory_info().rss)
        elapsed = time.perf_counter() - t0
        rows = lines - (1 if fmt == "csv" else 0)
        print(
            f"export {fmt}: {rows:,} rows, {size / 1e6:.0f} MB in {elapsed:.1f} s = {rows / elapsed:,.0f} rows/s; "
            f"peak RSS growth {(peak - base) / 1e6:.1f} MB"
        )


def main() -> None:
    use_bench_database()
    tenant = ensure_data()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    bench_timeline(tenant)
    bench_quarterly(tenant)
    bench_export(tenant)


if __name__ == "__main__":
    main()
