"""End to end with a real Celery worker: a conversation closes, enrichment runs, conversation.closed (with the
enriched interactions) is delivered, fails with 500, and is retried with the same webhook-id."""

import json
import time

import pytest
from standardwebhooks import Webhook

from conversations.services import conversation_close, interaction_append_turn, session_open
from conversations.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests import processes
from tests.factories import CustomerFactory


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_conversation_closed_is_signed_enriched_and_retried(tenant, receiver, tmp_path):
    processes.purge_queues("celery,escalation")  # earlier tests' leftovers; what this test queues stays
    receiver.answers[:] = [(500, {}), (200, {})]
    endpoint = WebhookEndpoint.objects.create(tenant=tenant, url=receiver.url, events=["conversation.closed"])
    customer = CustomerFactory(tenant=tenant)
    interaction, _ = session_open(tenant=tenant, customer=customer, channel="sms")
    interaction_append_turn(interaction=interaction, role="customer", text="Thanks, that was great, book me in!")
    worker = processes.start_worker(
        log_path=tmp_path / "worker.log", WEBHOOK_ALLOWED_PRIVATE_HOSTS="127.0.0.1", WEBHOOK_RETRY_SCHEDULE="1,1"
    )
    try:
        conversation_close(conversation=interaction.conversation)
        deadline = time.monotonic() + 60
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        processes.stop(worker)
    assert len(receiver.requests) == 2, (tmp_path / "worker.log").read_text()[-3000:]
    first, second = receiver.requests
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    body = Webhook(endpoint.secret).verify(second["body"], second["headers"])
    assert body["type"] == "conversation.closed"
    assert body["data"]["conversation"]["id"] == str(interaction.conversation_id)
    [row] = body["data"]["interactions"]
    assert row["id"] == str(interaction.id) and row["sentiment"] is not None and row["enrichment_backend"]
    assert json.loads(first["body"]) == body
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
