"""Partial index of open conversations by last activity: close_idle reads only those past the quiet period."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("conversations", "0021_recording_deletion")]

    operations = [
        AddIndexConcurrently(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("status", "open")), fields=["last_activity_at"], name="conversation_open_idle"
            ),
        ),
    ]
