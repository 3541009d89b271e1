"""Partial index of urgent sessions (urgency ≥ 4): the staff inbox lists their conversations first."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("conversations", "0010_inbox_admin_entry")]

    operations = [
        AddIndexConcurrently(
            model_name="interaction",
            index=models.Index(
                condition=models.Q(("urgency__gte", 4)), fields=["tenant", "conversation"], name="call_logs_urgent"
            ),
        ),
    ]
