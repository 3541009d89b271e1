"""Streaming CSV / NDJSON exports in flat memory.

PostgreSQL renders the rows itself (``COPY (SELECT …) TO STDOUT``, the queryset's SQL inside) and psycopg
passes them on as they arrive; they are yielded in ~64 KiB chunks, so memory does not grow with the row count
and Python does no per-value work. jsonb columns are copied through as JSON text. Under ASGI (daphne) the same generator is pulled
chunk by chunk through ``sync_to_async`` (Django would otherwise buffer a sync iterator whole: see
``StreamingHttpResponse.__aiter__``), in the request's thread-sensitive executor so the cursor stays on its
connection.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import psycopg
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, connections, transaction
from django.db.models import QuerySet
from django.http import StreamingHttpResponse

FLUSH_BYTES = 64 * 1024
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


@dataclass(frozen=True)
class ExportSpec:
    """Columns of one export: ``fields`` (model field names; ``*_id`` for foreign keys), of which
    ``json_fields`` are jsonb; ``ordering`` is the stream's order (must be total, e.g. end with ``id``)."""

    fields: tuple[str, ...]
    json_fields: tuple[str, ...] = ()
    ordering: tuple[str, ...] = ("id",)


def _copy_statement(queryset: QuerySet, spec: ExportSpec, fmt: str) -> tuple[str, tuple]:
    """``COPY (SELECT …) TO STDOUT`` of the queryset's rows (its filters, ``spec.ordering``), and its params.

    Values are rendered by PostgreSQL: ``to_json(x) #>> '{}'`` gives ISO-8601 UTC timestamps, ``true``/``false``
    and plain numbers in CSV; NDJSON rows are ``json_build_object(...)``. NDJSON travels in CSV format with
    control characters as quote and delimiter, which never occur in JSON text, so each line is the bare JSON.
    """
    inner = queryset.order_by(*spec.ordering).values(*spec.fields)
    compiler = inner.query.get_compiler(using=inner.db)
    sql, params = compiler.as_sql()
    if fmt == "csv":
        exprs = ", ".join(
            f't."{f}"::text AS "{f}"' if f in spec.json_fields else f'to_json(t."{f}") #>> \'{{}}\' AS "{f}"'
            for f in spec.fields
        )
        options = "FORMAT csv, HEADER true"
    else:
        exprs = "json_build_object(" + ", ".join(f"'{f}', t.\"{f}\"" for f in spec.fields) + ")::text"
        options = "FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02'"
    return f"COPY (SELECT {exprs} FROM ({sql}) t) TO STDOUT WITH ({options})", tuple(params)


def export_chunks(queryset: QuerySet, spec: ExportSpec, fmt: str) -> Iterator[bytes]:
    """Encoded chunks (bytes, ~64 KiB) of ``queryset`` as ``fmt`` (``"csv"`` with a header row, or ``"ndjson"``).

    PostgreSQL renders the rows (``COPY … TO STDOUT``) and psycopg hands them over as they arrive, so memory
    stays flat and Python does no per-value work. The queryset's own joins must not repeat column names.
    """
    if fmt not in CONTENT_TYPES:
        raise ValueError(f"unknown export format {fmt!r}")
    statement, params = _copy_statement(queryset, spec, fmt)
    db = connections[queryset.db]
    closing = False
    try:
        # A savepoint (or its own transaction): a client leaving mid-stream cancels the COPY, which must not
        # abort an enclosing transaction.
        with transaction.atomic(using=db.alias), db.cursor() as cursor:
            with cursor.cursor.copy(statement, params or None) as copy:
                buffer = bytearray()
                for block in copy:
                    buffer += block
                    if len(buffer) >= FLUSH_BYTES:
                        try:
                            yield bytes(buffer)
                        except GeneratorExit:
                            closing = True
                            raise
                        buffer.clear()
                if buffer:
                    yield bytes(buffer)
    except (psycopg.Error, DatabaseError):
        if not closing:
            raise


async def _async_chunks(chunks: Iterator[bytes], per_pull: int = 8) -> AsyncIterator[bytes]:
    pull = sync_to_async(lambda: list(itertools.islice(chunks, per_pull)), thread_sensitive=True)
    while batch := await pull():
        for chunk in batch:
            yield chunk


def streaming_export(request, queryset: QuerySet, spec: ExportSpec, fmt: str, filename: str) -> StreamingHttpResponse:
    """A ``StreamingHttpResponse`` of the export (async iterator under ASGI, sync under WSGI/test client)."""
    chunks = export_chunks(queryset, spec, fmt)
    django_request = getattr(request, "_request", request)
    content = _async_chunks(chunks) if isinstance(django_request, ASGIRequest) else chunks
    response = StreamingHttpResponse(content, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
