"""GIN index for full-text search over what was said in ``call_logs`` (see ``TranscriptDocument``).

Built ``CONCURRENTLY``: ``call_logs`` is the big table, and writes (every message on every channel) must not wait
for the build.
"""

import django.contrib.postgres.indexes
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations

import conversations.models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("conversations", "0008_inbox_takeover_notes"),
        ("identity", "0003_backfill_role_groups"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="interaction",
            index=django.contrib.postgres.indexes.GinIndex(
                conversations.models.TranscriptDocument("transcript"), name="call_logs_transcript_fts"
            ),
        ),
    ]
