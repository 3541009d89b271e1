"""Beat task of the warehouse export (a no-op while ``settings.WAREHOUSE_EXPORT_URI`` is empty)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task
def warehouse_export() -> dict:
    """Export the ``call_logs`` increment to ``WAREHOUSE_EXPORT_URI``; a concurrent run is skipped."""
    from conversations.warehouse.export import ExportBusy, warehouse_export_run

    if not settings.WAREHOUSE_EXPORT_URI:
        return {"skipped": "WAREHOUSE_EXPORT_URI is not set"}
    try:
        result = warehouse_export_run(destination=settings.WAREHOUSE_EXPORT_URI)
    except ExportBusy:
        return {"skipped": "another export is running"}
    return {"rows": result["rows"], "files": len(result["files"]), "erasures": result["erasures"]}
