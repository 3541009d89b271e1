"""Partial index of closed, not yet enriched call_logs rows: the enrichment redrive reads only those."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("conversations", "0014_message_status_twilio_values")]

    operations = [
        AddIndexConcurrently(
            model_name="interaction",
            index=models.Index(
                condition=models.Q(("ended_at__isnull", False), ("enriched_at__isnull", True)),
                fields=["ended_at"],
                name="call_logs_unenriched",
            ),
        ),
    ]
