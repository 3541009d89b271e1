"""Warehouse export: Parquet increments by updated_at watermark, readable back with the same values."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations.models import Interaction
from conversations.warehouse.export import SETTLE, read_back, warehouse_export_run
from tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db


def test_increments_by_watermark(tmp_path, tenant):
    dest = str(tmp_path / "lake")
    rows = [
        InteractionFactory(
            conversation__customer__tenant=tenant,
            sentiment=Decimal("0.25"),
            transcript=[{"role": "customer", "text": "hi", "at": "2026-01-01T00:00:00+00:00"}],
        )
        for _ in range(5)
    ]
    later = timezone.now() + SETTLE + timedelta(seconds=1)
    first = warehouse_export_run(destination=dest, now=later, rows_per_file=2)
    assert first["rows"] == 5 and len(first["files"]) == 3  # 2 + 2 + 1
    exported = [r for f in first["files"] for r in read_back(f)]
    assert sorted(r["id"] for r in exported) == sorted(str(r.id) for r in rows)
    one = next(r for r in exported if r["id"] == str(rows[0].id))
    assert one["sentiment"] == Decimal("0.2500") and one["transcript"][0]["text"] == "hi"
    assert one["started_at"].tzinfo is not None and one["tenant_id"] == str(tenant.id)
    assert pq.read_schema(first["files"][0]).field("sentiment").type.precision == 5

    assert warehouse_export_run(destination=dest, now=later)["rows"] == 0  # nothing changed
    Interaction.objects.filter(pk=rows[3].pk).update(intent="billing", updated_at=timezone.now())
    again = warehouse_export_run(destination=dest, now=timezone.now() + SETTLE + timedelta(seconds=1))
    assert again["rows"] == 1 and read_back(again["files"][0])[0]["intent"] == "billing"


def test_two_runs_in_the_same_second_never_overwrite_each_others_files(tmp_path, tenant):
    dest = str(tmp_path / "lake")
    first_row = InteractionFactory(conversation__customer__tenant=tenant)
    later = timezone.now() + SETTLE + timedelta(seconds=1)
    first = warehouse_export_run(destination=dest, now=later)
    second_row = InteractionFactory(conversation__customer__tenant=tenant)
    second = warehouse_export_run(destination=dest, now=later)  # same second, one new row
    assert first["rows"] == second["rows"] == 1 and set(first["files"]).isdisjoint(second["files"])
    assert read_back(first["files"][0])[0]["id"] == str(first_row.id)  # still there, not overwritten
    assert read_back(second["files"][0])[0]["id"] == str(second_row.id)


def test_rows_younger_than_the_settle_time_wait_for_the_next_run(tmp_path, tenant):
    InteractionFactory(conversation__customer__tenant=tenant)
    assert warehouse_export_run(destination=str(tmp_path), now=timezone.now())["rows"] == 0


def test_management_command(tmp_path, tenant):
    InteractionFactory(conversation__customer__tenant=tenant)
    Interaction.objects.update(updated_at=timezone.now() - timedelta(hours=1))
    out = StringIO()
    call_command("export_warehouse", "--destination", str(tmp_path), stdout=out)
    assert '"rows": 1' in out.getvalue()
