"""``manage.py export_warehouse [--destination URI]``: write the ``call_logs`` increment as Parquet files.

Destination defaults to ``settings.WAREHOUSE_EXPORT_URI`` (a local directory or ``s3://bucket/prefix``). Rows
changed since the last run (per-destination watermark on ``updated_at``) are written; see
:mod:`conversations.warehouse.export` for the layout and the at-least-once contract.
"""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from conversations.warehouse.export import ExportBusy, warehouse_export_run


class Command(BaseCommand):
    help = "Export changed call_logs rows to Parquet (local path or s3://…); prints a JSON summary."

    def add_arguments(self, parser):
        parser.add_argument("--destination", default=settings.WAREHOUSE_EXPORT_URI)

    def handle(self, *args, **options):
        destination = options["destination"]
        if not destination:
            raise CommandError("no destination: pass --destination or set WAREHOUSE_EXPORT_URI")
        try:
            result = warehouse_export_run(destination=destination)
        except ExportBusy as exc:
            raise CommandError(f"another export to {exc} is running") from exc
        self.stdout.write(json.dumps(result))
