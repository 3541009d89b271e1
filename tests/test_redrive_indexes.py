"""The beat redrives (``outbound_redrive`` and ``inbound_redrive``, every 30 s) read through partial indexes that
hold only the rows they look for, so their cost follows the stuck rows, not the size of the tables.

Each test runs the real redrive on an empty database (nothing is queued), captures the SQL it sent, and asks
PostgreSQL for that statement's plan with sequential scans disabled (``EXPLAIN (FORMAT JSON)``; tiny test tables
would otherwise always be scanned). The plan must read the table through the named index; without the index, or
with a query the index's predicate no longer covers, PostgreSQL picks another index or a disabled seq scan and
the test fails. Numbers on a realistic shape (50k messages, 10k calls) are in the benchmark note of the README.
"""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels_app.delivery import outbound_redrive
from channels_app.email.triage import email_triage_redrive
from channels_app.sms.replies import sms_reply_redrive
from channels_app.voice.voicemail import voicemail_redrive

pytestmark = pytest.mark.django_db


def index_scans(redrive) -> set[tuple[str, str]]:
    """Run ``redrive()`` and return the ``(table alias, index name)`` pairs its one SELECT's plan reads through."""
    with CaptureQueriesContext(connection) as captured:
        redrive()
    selects = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
    assert len(selects) == 1, selects
    with connection.cursor() as cursor:
        # plan as on a fresh database: earlier tests' rolled-back rows leave the heap and some indexes bloated
        # (and autovacuum's statistics with them), and a bloated index costs more than a compact rival, so the
        # plan would depend on test order. TRUNCATE gives each table read new, empty files; like everything
        # else here it is rolled back with the test's transaction.
        tables = sorted(set(re.findall(r'(?:FROM|JOIN) "(\w+)"', selects[0])))
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses while deferred FK checks are pending
        cursor.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
        cursor.execute("ANALYZE " + ", ".join(f'"{t}"' for t in tables))
        cursor.execute("SET LOCAL enable_seqscan = off")  # until the test's transaction is rolled back
        cursor.execute("EXPLAIN (FORMAT JSON) " + selects[0])
        (plan,) = cursor.fetchone()
    if isinstance(plan, str):
        plan = json.loads(plan)
    # an Index Scan names its table alias; a Bitmap Index Scan does not — its parent Bitmap Heap Scan does
    scans, nodes = set(), [(plan[0]["Plan"], None)]
    while nodes:
        node, parent_alias = nodes.pop()
        alias = node.get("Alias", parent_alias)
        if "Index Name" in node:
            scans.add((alias, node["Index Name"]))
        nodes.extend((child, alias) for child in node.get("Plans", []))
    return scans


def test_outbound_redrive_reads_only_pending_outbound_rows():
    assert ("conversations_channelmessage", "msg_outbound_pending") in index_scans(outbound_redrive)


def test_sms_reply_redrive_reads_only_inbound_sms():
    assert ("conversations_channelmessage", "msg_inbound_sms") in index_scans(sms_reply_redrive)


def test_sms_reply_redrive_looks_replies_up_by_key():
    assert ("u0", "outbound_once") in index_scans(sms_reply_redrive)


def test_voicemail_redrive_reads_only_calls_with_a_completed_recording():
    assert ("call_logs", "call_logs_recording_done") in index_scans(voicemail_redrive)


def test_email_triage_redrive_reads_only_accepted_untriaged_emails():
    assert ("channels_app_inboundemail", "inbound_email_untriaged") in index_scans(email_triage_redrive)


def test_enrichment_redrive_reads_only_unenriched_closed_rows():
    from enrichment.services import enrichment_redrive

    assert ("call_logs", "call_logs_unenriched") in index_scans(enrichment_redrive)
