"""Partial index of enriched call_logs rows by (tenant, enriched_at): the CRM's missed-enrichment sweep (every 30 s)
and the CRM backfill read a tenant's rows enriched in a window."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("conversations", "0022_conversation_open_idle_index")]

    operations = [
        AddIndexConcurrently(
            model_name="interaction",
            index=models.Index(
                condition=models.Q(("enriched_at__isnull", False)),
                fields=["tenant", "enriched_at"],
                name="call_logs_tenant_enriched",
            ),
        ),
    ]
