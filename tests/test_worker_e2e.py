"""End to end with a real Celery worker process: inbound SMS → reply sent → session closed → enriched."""

import pytest

from channels_app import twilio_payloads
from conversations.models import ChannelMessage, Interaction
from conversations.services import close_idle
from tests.processes import wait_for


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_sms_reply_close_and_enrich_on_a_real_worker(tenant, twilio_post, celery_worker):
    params = twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid,
        from_="+15551230001",
        to="+15550100001",
        body="Hi, I'd like to book an appointment please",
    )
    assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200

    reply = wait_for(
        lambda: (
            ChannelMessage.objects.filter(idempotency_key=f"reply:{params['MessageSid']}")
            .exclude(status="pending")
            .first()
        )
    )
    assert reply.provider_id.startswith("SM") and reply.recipient == "+15551230001"
    row = Interaction.objects.get()
    assert [t["role"] for t in row.transcript] == ["customer", "agent"]

    assert close_idle(close_all=True)["interactions"] == 1
    # this session's row: the CSAT survey sent after the close is a row of its own, scored on its own
    session = row.pk
    row = wait_for(lambda: Interaction.objects.filter(pk=session, enriched_at__isnull=False).first())
    assert row.ended_at is not None
    assert row.intent == "book_appointment" and row.sentiment is not None
    assert row.lead_score is not None and row.satisfaction is not None
    assert row.enrichment_backend == "local"
