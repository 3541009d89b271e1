"""An erase reaches downstream copies: a tombstone (opaque customer id + erasure time, nothing else) in the
next warehouse increment and in the API's incremental pull, and the erased rows again with their text gone."""

import json
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from django.utils import timezone

from conversations.warehouse.export import SETTLE, read_back, warehouse_export_run
from identity.privacy import customer_erase
from identity.services import customer_resolve

pytestmark = pytest.mark.django_db


def soon():
    return timezone.now() + SETTLE + timedelta(seconds=1)


def test_next_warehouse_increment_carries_a_tombstone_and_the_emptied_rows(tmp_path, patient_row, tenant):
    dest = str(tmp_path / "lake")
    first = warehouse_export_run(destination=dest, now=soon())
    assert first["rows"] == 1 and first["erasures"] == 0
    assert "knee" in json.dumps(read_back(first["files"][0])[0]["transcript"])

    customer_erase(customer=patient_row.customer, actor="dpo")
    second = warehouse_export_run(destination=dest, now=soon())
    (path,) = second["erasure_files"]
    assert "/customer_erasures/export_date=" in path
    assert pq.read_schema(path).names == ["customer_id", "tenant_id", "erased_at"]
    (tombstone,) = pq.read_table(path).to_pylist()
    assert tombstone["customer_id"] == str(patient_row.customer_id) and tombstone["tenant_id"] == str(tenant.pk)
    assert tombstone["erased_at"].tzinfo is not None
    with open(path, "rb") as f:
        raw = f.read()
    assert b"Zelda" not in raw and b"4155550123" not in raw

    (row,) = [r for f in second["files"] for r in read_back(f)]  # the erased row again, text removed
    assert row["id"] == str(patient_row.pk) and row["transcript"] == [] and "Zelda" not in str(row)

    third = warehouse_export_run(destination=dest, now=soon())
    assert (third["rows"], third["erasures"]) == (0, 0)  # sent once


def test_erasures_younger_than_the_settle_time_wait_for_the_next_run(tmp_path, patient_row):
    customer_erase(customer=patient_row.customer, actor="dpo")
    assert warehouse_export_run(destination=str(tmp_path), now=timezone.now())["erasures"] == 0
    assert warehouse_export_run(destination=str(tmp_path), now=soon())["erasures"] == 1


def test_api_incremental_pull_lists_tombstones_of_its_own_tenant_only(patient_row, tenant, other_tenant, api):
    before = timezone.now()
    theirs = customer_resolve(tenant=other_tenant, phone="+14155550999").customer
    customer_erase(customer=theirs, actor="dpo")
    customer_erase(customer=patient_row.customer, actor="dpo")
    get = api(tenant, scopes=["interactions:read"])

    page = get("/api/v1/erasures/", {"erased_after": before.isoformat()})
    assert page.status_code == 200, page.content
    assert [r["customer"] for r in page.json()["results"]] == [str(patient_row.customer_id)]
    assert set(page.json()["results"][0]) == {"customer", "erased_at"}
    assert get("/api/v1/erasures/", {"erased_after": timezone.now().isoformat()}).json()["results"] == []

    stream = get("/api/v1/erasures/", {"format": "ndjson"})
    lines = [json.loads(line) for line in b"".join(stream.streaming_content).decode().splitlines()]
    assert [line["customer_id"] for line in lines] == [str(patient_row.customer_id)]

    rows = get("/api/v1/interactions/", {"updated_after": before.isoformat()}).json()["results"]
    assert [(r["id"], r["transcript"]) for r in rows] == [(str(patient_row.pk), [])]


def test_erasures_need_the_interactions_scope(tenant, api):
    assert api(tenant, scopes=["audit:read"])("/api/v1/erasures/").status_code == 403
