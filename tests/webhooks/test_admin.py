"""Webhooks in admin: private URLs refused on save, replay of a dead delivery keeps its webhook-id."""

import pytest
from django.utils import timezone

from conversations.webhooks.models import WebhookDelivery, WebhookEndpoint
from conversations.webhooks.services import webhook_event_emit

pytestmark = pytest.mark.django_db


def test_private_url_is_refused_when_registering(admin_client, tenant, settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS = []
    response = admin_client.post(
        "/admin/conversations/webhookendpoint/add/",
        {"tenant": str(tenant.pk), "url": "https://169.254.169.254/latest", "events": ["conversation.closed"]},
    )
    assert response.status_code == 200 and "cannot be used" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_replay_action_requeues_a_dead_delivery(admin_client, tenant):
    WebhookEndpoint.objects.create(tenant=tenant, url="https://hooks.example.com/x", events=["incident.acknowledged"])
    message = webhook_event_emit(tenant=tenant, event_type="incident.acknowledged", payload={}, dedupe_key="k")
    delivery = WebhookDelivery.objects.get(message=message)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="dead", attempts=8, completed_at=timezone.now())
    admin_client.post("/admin/conversations/webhookdelivery/", {"action": "replay", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.message.msg_id) == ("pending", 0, message.msg_id)
    page = admin_client.get(f"/admin/conversations/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200 and message.msg_id in page.content.decode()
