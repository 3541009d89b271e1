"""Tombstones of erased patients in the warehouse increment, so downstream copies can delete them too.

Each run of :func:`conversations.warehouse.export.warehouse_export_run` also writes the customers erased since
the last run (``Customer.erased_at``, which an erase sets for the patient and every customer merged into them)
to ``<destination>/customer_erasures/export_date=YYYY-MM-DD/part-<run>.parquet`` with three columns and nothing
else — no name, identifier or text:

- ``customer_id`` (string, UUID): the opaque id the ``call_logs`` files carry in their ``customer_id`` column;
- ``tenant_id`` (string, UUID);
- ``erased_at`` (timestamp, UTC, microseconds).

Downstream: delete (or anonymise) every row whose ``customer_id`` appears here. The erased ``call_logs`` rows
themselves come again in the same increment with their transcript and metadata emptied (the erase moves their
``updated_at``). Watermark: the destination's :class:`WarehouseWatermark` row named ``<destination>#erasures``,
ordered by ``(erased_at, id)`` and moved after the file is written (at-least-once, like ``call_logs``); rows
younger than ``SETTLE`` wait for the next run. A customer erased twice is sent twice (harmless).
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
from django.db.models import Q
from pyarrow import fs as pafs

from conversations.warehouse.models import WarehouseWatermark
from identity.models import Customer

SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("tenant_id", pa.string()), ("erased_at", pa.timestamp("us", tz="UTC"))]
)
SUFFIX = "#erasures"


def erasures_export(
    *, filesystem: pafs.FileSystem, root: str, destination: str, run: str, now: datetime, until: datetime, limit: int
) -> dict:
    """Write the tombstones of customers erased before ``until`` and after the watermark (at most ``limit``;
    the rest go next run). Called under the destination's advisory lock. Returns ``{"erasures", "files"}``."""
    mark, _ = WarehouseWatermark.objects.get_or_create(destination=destination + SUFFIX)
    rows = Customer.objects.filter(erased_at__isnull=False, erased_at__lt=until)
    if mark.updated_at is not None:
        rows = rows.filter(Q(erased_at__gt=mark.updated_at) | Q(erased_at=mark.updated_at, id__gt=mark.last_id))
    found = list(rows.order_by("erased_at", "id").values_list("id", "tenant_id", "erased_at")[:limit])
    mark.last_run_at = now
    if not found:
        mark.save(update_fields=["last_run_at"])
        return {"erasures": 0, "files": []}
    partition = f"{root.rstrip('/')}/customer_erasures/export_date={now:%Y-%m-%d}"
    filesystem.create_dir(partition, recursive=True)
    path = f"{partition}/part-{run}.parquet"
    ids, tenants, times = zip(*found, strict=True)
    table = pa.Table.from_arrays(
        [pa.array([str(i) for i in ids]), pa.array([str(t) for t in tenants]), pa.array(times, type=SCHEMA[2].type)],
        schema=SCHEMA,
    )
    pq.write_table(table, path, filesystem=filesystem, compression="snappy")
    mark.updated_at, mark.last_id = found[-1][2], found[-1][0]
    mark.rows_exported += len(found)
    mark.files_written += 1
    mark.save(update_fields=["updated_at", "last_id", "rows_exported", "files_written", "last_run_at"])
    return {"erasures": len(found), "files": [path]}
