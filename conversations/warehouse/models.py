"""Watermarks of the incremental ``call_logs`` → Parquet warehouse export (one row per destination)."""

from __future__ import annotations

from django.db import models


class WarehouseWatermark(models.Model):
    """Where the export to ``destination`` stopped: rows are ordered by ``(updated_at, id)``.

    The next run exports rows strictly after ``(updated_at, last_id)``. Loaded by :mod:`conversations.models`.
    """

    destination = models.CharField(max_length=500, unique=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    last_id = models.UUIDField(null=True, blank=True)
    rows_exported = models.BigIntegerField(default=0)
    files_written = models.PositiveIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.destination} @ {self.updated_at}"
