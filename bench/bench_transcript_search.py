"""Benchmark: full-text search over transcripts (the staff inbox and the call_logs admin search).

Works in its own database ``callsphere_bench_fts`` on the same PostgreSQL (never the test or dev database). The
data set is generated once in SQL and kept: BENCH_ROWS interactions (default 1,000,000) in BENCH_CUSTOMERS
conversations (default 100,000) of one tenant, each with a two-turn transcript drawn from a word pool; a rare word
("chest") is in about 1 row in 1,000, a common one ("appointment") in about half. Reports p50 / p95 (ms) over
BENCH_REPEAT runs of:

1. ``call_logs`` rows matching a word (the admin search: ``transcript_matches``), first 100 by ``started_at``;
2. the inbox's first page (50 conversations) filtered by the word (``inbox_page``: two ordered queries and the page's annotations), among the active
   (open) conversations — the inbox's default — and among all of them;

and whether the plan uses the GIN index ``call_logs_transcript_fts``.

Run: ``.venv/bin/python bench/bench_transcript_search.py``. ``BENCH_ROWS`` makes it smaller.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings_test")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402

BENCH_DB = "callsphere_bench_fts"
ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "100000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "30"))
WORDS = [
    "appointment",
    "tomorrow",
    "morning",
    "cleaning",
    "refill",
    "prescription",
    "insurance",
    "billing",
    "cancel",
    "reschedule",
    "parking",
    "directions",
    "hours",
    "friday",
    "monday",
    "dentist",
    "checkup",
    "vaccine",
    "results",
    "referral",
    "fever",
    "cough",
    "rash",
    "headache",
    "allergy",
    "knee",
    "back",
]


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
        slug="bench-fts", defaults={"name": "Bench", "short_name": "Bench", "timezone": "America/New_York"}
    )
    have = Interaction.objects.filter(tenant=tenant).count()
    if have >= ROWS:
        print(f"data: {have:,} call_logs rows already present")
        return tenant
    print(f"data: generating {ROWS:,} call_logs rows in {CUSTOMERS:,} conversations (once; kept for later runs)")
    t0 = time.monotonic()
    words = "(ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "])"
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM call_logs WHERE tenant_id = %s", [tenant.pk])
        cursor.execute("DELETE FROM conversations_conversation WHERE tenant_id = %s", [tenant.pk])
        cursor.execute("DELETE FROM identity_customer WHERE tenant_id = %s", [tenant.pk])
        cursor.execute(
            """INSERT INTO identity_customer (id, tenant_id, display_name, legal_hold, memory_opt_out, visit_reason,
                                              preferred_language, created_at, updated_at)
               SELECT md5('c' || g)::uuid, %s, 'Patient ' || g, '', false, '', '', now(), now()
               FROM generate_series(1, %s) g""",
            [tenant.pk, CUSTOMERS],
        )
        cursor.execute(
            """INSERT INTO conversations_conversation (id, tenant_id, customer_id, status, opened_at, last_activity_at)
               SELECT md5('v' || g)::uuid, %s, md5('c' || g)::uuid, CASE WHEN g %% 10 = 0 THEN 'open' ELSE 'closed' END,
                      now() - (g %% 365) * interval '1 day', now() - (g %% 365) * interval '1 day'
               FROM generate_series(1, %s) g""",
            [tenant.pk, CUSTOMERS],
        )
        cursor.execute("UPDATE conversations_conversation SET closed_at = last_activity_at WHERE status = 'closed'")
        cursor.execute(
            f"""INSERT INTO call_logs (id, tenant_id, customer_id, conversation_id, channel, direction, started_at,
                   ended_at, last_activity_at, transcript, intent, escalated, metadata, enrichment_backend,
                   enrichment_model, enrichment_version, updated_at)
               SELECT gen_random_uuid(), %s, md5('c' || c)::uuid, md5('v' || c)::uuid,
                      (ARRAY['sms','chat','email','voice'])[1 + g %% 4], 'inbound',
                      now() - (g %% 365) * interval '1 day', now() - (g %% 365) * interval '1 day',
                      now() - (g %% 365) * interval '1 day',
                      jsonb_build_array(
                        jsonb_build_object('role', 'customer', 'at', now()::text, 'text',
                          CASE WHEN g %% 1000 = 7 THEN 'I have chest pain since ' ELSE '' END ||
                          {words}[1 + (g * 7) %% {len(WORDS)}] || ' ' || {words}[1 + (g * 13) %% {len(WORDS)}] || ' ' ||
                          CASE WHEN g %% 2 = 0 THEN 'appointment' ELSE 'question' END),
                        jsonb_build_object('role', 'agent', 'at', now()::text, 'text',
                          'Thanks, ' || {words}[1 + (g * 11) %% {len(WORDS)}] || ' noted.')),
                      '', false, '{{}}', '', '', '', now()
               FROM (SELECT g, 1 + (g %% %s) AS c FROM generate_series(1, %s) g) s""",
            [tenant.pk, CUSTOMERS, ROWS],
        )
        cursor.execute("ANALYZE call_logs")
        cursor.execute("ANALYZE conversations_conversation")
    print(f"data: generated in {time.monotonic() - t0:.0f} s")
    return tenant


def timed(fn) -> tuple[float, float]:
    samples = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), pct(samples, 95)


def main() -> None:
    use_bench_database()
    tenant = ensure_data()
    from conversations.inbox.selectors import InboxFilters, inbox_page, transcript_matches
    from conversations.models import Interaction

    for word in ("chest", "refill", "appointment"):
        rows = Interaction.objects.filter(tenant=tenant).filter(transcript_matches(word)).order_by("started_at")
        p50, p95 = timed(lambda rows=rows: list(rows.values_list("id", flat=True)[:100]))
        plan = rows.values_list("id", flat=True)[:100].explain()
        print(
            f"call_logs search {word!r:14} first 100 rows: p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
            f"GIN index used: {'call_logs_transcript_fts' in plan}"
        )
        for status in ("active", "all"):
            filters = InboxFilters(status=status, q=word)
            p50, p95 = timed(lambda filters=filters: inbox_page(tenant_id=tenant.pk, filters=filters))
            print(
                f"inbox search     {word!r:14} first 50 conversations ({status:6}): p50 {p50:7.1f} ms  p95 {p95:7.1f} ms"
            )


if __name__ == "__main__":
    main()
