"""Incremental export of ``call_logs`` to Parquet files that Snowflake, BigQuery and Redshift load directly.

Each run exports the rows changed since the destination's watermark, ordered by ``(updated_at, id)``, up to
``now - SETTLE`` (a row saved in a transaction still open at ``now`` may commit later with an older
``updated_at``; waiting :data:`SETTLE` keeps it from being skipped). Files go to
``<destination>/call_logs/export_date=YYYY-MM-DD/part-<UTC second>-<random>-<n>.parquet`` (Hive-style partition; snappy;
explicit Arrow schema: UTC microsecond timestamps, ``decimal(5,4)`` sentiment, jsonb as JSON text), and the
tombstones of patients erased since the last run under ``<destination>/customer_erasures/…`` (see
:mod:`conversations.warehouse.erasures`: an opaque customer id, the tenant and the erasure time). The
watermark moves after each file is fully written, so a crash re-exports at most one file's rows: the export is
at-least-once; load with a MERGE on ``id`` keeping the greatest ``updated_at``.

``destination``: a local directory, or any URI pyarrow's filesystems understand (``s3://bucket/prefix`` with
the usual AWS_* environment, ``?endpoint_override=host:port`` for S3-compatible stores such as MinIO).
"""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.db import connection
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from pyarrow import fs as pafs

from conversations.models import Interaction
from conversations.warehouse.erasures import erasures_export
from conversations.warehouse.models import WarehouseWatermark

SETTLE = timedelta(minutes=2)
ROWS_PER_FILE = 250_000
ROWS_PER_BATCH = 10_000

_TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("tenant_id", pa.string()),
        ("customer_id", pa.string()),
        ("conversation_id", pa.string()),
        ("channel", pa.string()),
        ("direction", pa.string()),
        ("started_at", _TS),
        ("ended_at", _TS),
        ("last_activity_at", _TS),
        ("sentiment", pa.decimal128(5, 4)),
        ("lead_score", pa.int16()),
        ("intent", pa.string()),
        ("satisfaction", pa.int16()),
        ("satisfaction_source", pa.string()),
        ("urgency", pa.int16()),
        ("escalated", pa.bool_()),
        ("enrichment_backend", pa.string()),
        ("enrichment_model", pa.string()),
        ("enrichment_version", pa.string()),
        ("enriched_at", _TS),
        ("updated_at", _TS),
        ("transcript", pa.string()),
        ("metadata", pa.string()),
    ]
)
_JSON = {"transcript", "metadata"}
_UUID = {"id", "tenant_id", "customer_id", "conversation_id"}


class ExportBusy(Exception):
    """Another run holds this destination's watermark."""


def _filesystem(destination: str) -> tuple[pafs.FileSystem, str]:
    if "://" in destination:
        return pafs.FileSystem.from_uri(destination)
    path = Path(destination).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return pafs.LocalFileSystem(), str(path)


def _rows(after_ts: datetime | None, after_id: uuid.UUID | None, until: datetime):
    qs = Interaction.objects.filter(updated_at__lt=until)
    if after_ts is not None:
        qs = qs.filter(Q(updated_at__gt=after_ts) | Q(updated_at=after_ts, id__gt=after_id))
    columns = [f"_{n}" if n in _JSON else n for n in SCHEMA.names]
    qs = qs.annotate(**{f"_{n}": Cast(n, TextField()) for n in _JSON}).order_by("updated_at", "id")
    return qs.values_list(*columns).iterator(chunk_size=ROWS_PER_BATCH)


def _batch(rows: list[tuple]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    arrays = []
    for i, field in enumerate(SCHEMA):
        values = columns[i]
        if field.name in _UUID:
            values = [str(v) if v is not None else None for v in values]
        arrays.append(pa.array(values, type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


@contextmanager
def _advisory_lock(destination: str):
    """A PostgreSQL session advisory lock per destination (not a transaction: watermarks commit per file)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 7))", [destination])
        if not cursor.fetchone()[0]:
            raise ExportBusy(destination)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 7))", [destination])


def warehouse_export_run(*, destination: str, now: datetime | None = None, rows_per_file: int = ROWS_PER_FILE) -> dict:
    """Export the increment of ``call_logs`` and the erasure tombstones to ``destination``; returns ``{"rows",
    "files": [paths], "watermark": ISO or None, "erasures": n, "erasure_files": [paths]}``. Raises :class:`ExportBusy` when another run is exporting there."""
    now = now or timezone.now()
    until = now - SETTLE
    filesystem, root = _filesystem(destination)
    run = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"  # two runs in one second never share a file name
    partition = f"{root.rstrip('/')}/call_logs/export_date={now:%Y-%m-%d}"
    mark, _ = WarehouseWatermark.objects.get_or_create(destination=destination)
    files: list[str] = []
    total = 0
    with _advisory_lock(destination):
        mark.refresh_from_db()
        rows = _rows(mark.updated_at, mark.last_id, until)
        writer, path, in_file, last = None, "", 0, None
        pending: list[tuple] = []

        def flush():
            nonlocal writer, path, in_file
            if not pending:
                return
            if writer is None:
                filesystem.create_dir(partition, recursive=True)
                path = f"{partition}/part-{run}-{len(files):05d}.parquet"
                writer = pq.ParquetWriter(path, SCHEMA, filesystem=filesystem, compression="snappy")
            writer.write_batch(_batch(pending))
            in_file += len(pending)
            pending.clear()

        def close_file():
            nonlocal writer, in_file
            if writer is None:
                return
            writer.close()
            files.append(path)
            mark.updated_at, mark.last_id = last[SCHEMA.names.index("updated_at")], last[0]
            mark.rows_exported += in_file
            mark.files_written += 1
            mark.last_run_at = now
            mark.save(update_fields=["updated_at", "last_id", "rows_exported", "files_written", "last_run_at"])
            writer, in_file = None, 0

        for row in rows:
            pending.append(row)
            last = row
            total += 1
            if len(pending) >= ROWS_PER_BATCH:
                flush()
            if in_file + len(pending) >= rows_per_file:
                flush()
                close_file()
        flush()
        close_file()
        if not files:
            mark.last_run_at = now
            mark.save(update_fields=["last_run_at"])
        erasures = erasures_export(
            filesystem=filesystem,
            root=root,
            destination=destination,
            run=run,
            now=now,
            until=until,
            limit=rows_per_file,
        )
    return {
        "rows": total,
        "files": files,
        "watermark": mark.updated_at.isoformat() if mark.updated_at else None,
        "erasures": erasures["erasures"],
        "erasure_files": erasures["files"],
    }


def read_back(path: str) -> list[dict]:
    """Rows of one exported file as dicts (jsonb columns parsed) — for tests and spot checks."""
    table = pq.read_table(path)
    out = table.to_pylist()
    for row in out:
        for name in _JSON:
            row[name] = json.loads(row[name]) if row[name] is not None else None
    return out
