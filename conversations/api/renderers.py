"""CSV and NDJSON renderers: they make ``?format=csv|ndjson`` and ``Accept: text/csv|application/x-ndjson``
negotiable and documented. List endpoints answer those formats with a stream (:mod:`conversations.api.export`);
``render`` here only serves small, non-streamed data (a single object or an error)."""

from __future__ import annotations

import csv
import io
import json

from django.core.serializers.json import DjangoJSONEncoder
from rest_framework.renderers import BaseRenderer


def _flat(data) -> list[dict]:
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        data = data["results"]
    if isinstance(data, dict):
        data = [data]
    return [d for d in (data or []) if isinstance(d, dict)]


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        rows = _flat(data)
        if not rows:
            return b""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v, cls=DjangoJSONEncoder) if isinstance(v, (dict, list)) else v for k, v in row.items()}
            )
        return out.getvalue().encode()


class NDJSONRenderer(BaseRenderer):
    media_type = "application/x-ndjson"
    format = "ndjson"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return b"".join(json.dumps(row, cls=DjangoJSONEncoder).encode() + b"\n" for row in _flat(data))
