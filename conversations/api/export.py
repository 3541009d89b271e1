"""Streaming CSV / NDJSON exports in flat memory.

PostgreSQL renders the rows itself (``COPY (SELECT …) TO STDOUT``, the queryset's SQL inside) and psycopg
passes them on as they arrive; they are yielded in ~64 KiB chunks, so memory does not grow with the row count
and Python does no per-value work. jsonb columns are copied through as JSON text. Under ASGI (daphne) the same generator is pulled
chunk by chunk through ``sync_to_async`` (Django would otherwise buffer a sync iterator whole: see
``StreamingHttpResponse.__aiter__``), in the request's thread-sensitive executor so the cursor stays on its
connection.

Failures release what they hold. The COPY starts in the view (the first chunk is pulled before the response
exists), so a database error there is an ordinary error response. A failure after the 200 went out (a
statement timeout, a dropped connection) cannot change the status: the stream rolls back, logs, ends with one
:data:`INTERRUPTED` line and finishes the response normally — never an exception out of the ASGI app, which
daphne cannot handle once a response started (it stops reaping connections). A client that goes away closes the
generator (Django's ``response.close()`` / ``request_finished``), which cancels the COPY and frees the
connection.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field

import psycopg
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, connections, transaction
from django.db.models import QuerySet
from django.http import StreamingHttpResponse

logger = logging.getLogger(__name__)

FLUSH_BYTES = 64 * 1024
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
# The last line of a stream that failed after it started (a complete export never ends with it).
INTERRUPTED = {"csv": b"#export interrupted\n", "ndjson": b'{"error": "export_interrupted"}\n'}


@dataclass(frozen=True)
class ExportSpec:
    """Columns of one export: ``fields`` (model field names; ``*_id`` for foreign keys; or names of
    ``annotations``, expressions added to the queryset unless it has them already, e.g. the patient's name), of
    which ``json_fields`` are jsonb; ``ordering`` is the stream's order (must be total, e.g. end with ``id``)."""

    fields: tuple[str, ...]
    json_fields: tuple[str, ...] = ()
    ordering: tuple[str, ...] = ("id",)
    annotations: dict = field(default_factory=dict)


def _copy_statement(queryset: QuerySet, spec: ExportSpec, fmt: str) -> tuple[str, tuple]:
    """``COPY (SELECT …) TO STDOUT`` of the queryset's rows (its filters, ``spec.ordering``), and its params.

    Values are rendered by PostgreSQL: ``to_json(x) #>> '{}'`` gives ISO-8601 UTC timestamps, ``true``/``false``
    and plain numbers in CSV; NDJSON rows are ``json_build_object(...)``. NDJSON travels in CSV format with
    control characters as quote and delimiter, which never occur in JSON text, so each line is the bare JSON.
    """
    missing = {name: expr for name, expr in spec.annotations.items() if name not in queryset.query.annotations}
    inner = queryset.annotate(**missing).order_by(*spec.ordering).values(*spec.fields)
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


def export_chunks(queryset: QuerySet, spec: ExportSpec, fmt: str) -> Generator[bytes, None, None]:
    """Encoded chunks (bytes, ~64 KiB) of ``queryset`` as ``fmt`` (``"csv"`` with a header row, or ``"ndjson"``).

    PostgreSQL renders the rows (``COPY … TO STDOUT``) and psycopg hands them over as they arrive, so memory
    stays flat and Python does no per-value work. The queryset's own joins must not repeat column names.
    """
    if fmt not in CONTENT_TYPES:
        raise ValueError(f"unknown export format {fmt!r}")
    statement, params = _copy_statement(queryset, spec, fmt)
    db = connections[queryset.db]
    closing = started = False
    try:
        # A savepoint (or its own transaction): a client leaving mid-stream cancels the COPY, which must not
        # abort an enclosing transaction.
        with transaction.atomic(using=db.alias), db.cursor() as cursor:
            with cursor.cursor.copy(statement, params or None) as copy:
                buffer = bytearray()
                for block in copy:
                    buffer += block
                    if len(buffer) >= FLUSH_BYTES:
                        started = True
                        try:
                            yield bytes(buffer)
                        except GeneratorExit:
                            closing = True
                            raise
                        buffer.clear()
                if buffer:
                    started = True
                    try:
                        yield bytes(buffer)
                    except GeneratorExit:
                        closing = True
                        raise
    except (psycopg.Error, DatabaseError):
        if closing:
            return
        if not started:
            raise
        logger.exception("export stream of %s interrupted", queryset.model._meta.label)
    except Exception:
        if not started:
            raise
        logger.exception("export stream of %s interrupted", queryset.model._meta.label)
    else:
        return
    yield INTERRUPTED[fmt]


class _Stream:
    """The export's chunks, the first one already pulled (so the COPY started in the view), iterable sync or
    async; ``close()`` (called by Django's ``response.close()``, in the request's thread) closes the generator
    and so cancels an unfinished COPY."""

    def __init__(self, chunks: Generator[bytes, None, None]):
        self._chunks = chunks
        self._first = next(chunks, None)

    def _take_first(self) -> list[bytes]:
        first, self._first = self._first, None
        return [first] if first is not None else []

    def close(self) -> None:
        self._chunks.close()


class _SyncStream(_Stream):
    def __iter__(self) -> Iterator[bytes]:
        return itertools.chain(self._take_first(), self._chunks)


class _AsyncStream(_Stream):
    def __aiter__(self) -> AsyncIterator[bytes]:
        return _async_chunks(itertools.chain(self._take_first(), self._chunks))


async def _async_chunks(chunks: Iterator[bytes], per_pull: int = 8) -> AsyncIterator[bytes]:
    pull = sync_to_async(lambda: list(itertools.islice(chunks, per_pull)), thread_sensitive=True)
    while batch := await pull():
        for chunk in batch:
            yield chunk


def streaming_export(request, queryset: QuerySet, spec: ExportSpec, fmt: str, filename: str) -> StreamingHttpResponse:
    """A ``StreamingHttpResponse`` of the export (async iterator under ASGI, sync under WSGI/test client)."""
    django_request = getattr(request, "_request", request)
    stream_class = _AsyncStream if isinstance(django_request, ASGIRequest) else _SyncStream
    content = stream_class(export_chunks(queryset, spec, fmt))
    response = StreamingHttpResponse(content, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
