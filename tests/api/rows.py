"""Bulk call_logs rows inserted in one statement, for export tests that need 100k rows."""

from django.db import connection

INSERT = """
INSERT INTO call_logs (id, tenant_id, customer_id, conversation_id, channel, direction, started_at, ended_at,
                       last_activity_at, transcript, sentiment, intent, escalated, metadata, enrichment_backend,
                       enrichment_model, enrichment_version, updated_at)
SELECT gen_random_uuid(), %(tenant)s, %(customer)s, %(conversation)s,
       (ARRAY['voice','chat','sms','email'])[1 + g %% 4], 'inbound',
       now() - make_interval(secs => g), now() - make_interval(secs => g) + interval '1 minute',
       now() - make_interval(secs => g) + interval '1 minute',
       jsonb_build_array(jsonb_build_object('role', 'customer', 'text', 'row ' || g, 'at', now())),
       ((g %% 200) - 100) / 100.0, 'book_appointment', g %% 10 = 0, '{}'::jsonb, 'local', 'vader', '1', now()
FROM generate_series(1, %(n)s) AS g
"""


def insert_rows(conversation, n: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT,
            {
                "tenant": conversation.tenant_id,
                "customer": conversation.customer_id,
                "conversation": conversation.pk,
                "n": n,
            },
        )
