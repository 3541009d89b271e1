"""Signed delivery to a real loopback receiver: signature, stable webhook-id on retry, schedule, 410, dead letter."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from conversations.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookMessage
from conversations.webhooks.services import (
    retry_delay,
    webhook_delivery_attempt,
    webhook_delivery_replay,
    webhook_endpoint_rotate_secret,
    webhook_event_emit,
)
from identity.models import TenantMembership

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_loopback")]


def emit(tenant, key="incident.acknowledged:1"):
    message = webhook_event_emit(
        tenant=tenant, event_type="incident.acknowledged", payload={"incident": "1"}, dedupe_key=key
    )
    return message, WebhookDelivery.objects.get(message=message)


def test_signed_and_same_webhook_id_on_retry_after_500(tenant, endpoint, receiver):
    receiver.answers[:] = [(500, {}), (200, {})]
    message, delivery = emit(tenant)
    t0 = timezone.now()
    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=t0) == "retrying"
    delivery.refresh_from_db()
    assert t0 + timedelta(seconds=4.5) <= delivery.next_attempt_at <= t0 + timedelta(seconds=5.5)  # 5 s ± 10 %
    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=t0 + timedelta(seconds=1)) == "skipped"  # not due
    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=t0 + timedelta(seconds=6)) == "succeeded"

    assert len(receiver.requests) == 2
    ids = {r["headers"]["webhook-id"] for r in receiver.requests}
    assert ids == {message.msg_id}
    for request in receiver.requests:
        payload = Webhook(endpoint.secret).verify(request["body"], request["headers"])
        assert payload == {
            "type": "incident.acknowledged",
            "timestamp": payload["timestamp"],
            "data": {"incident": "1"},
        }
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(receiver.requests[0]["body"], receiver.requests[0]["headers"])
    assert list(WebhookAttempt.objects.filter(delivery=delivery).values_list("status_code", flat=True)) == [500, 200]


def test_emit_is_idempotent_per_dedupe_key(tenant, endpoint):
    first, _ = emit(tenant, key="k")
    again = webhook_event_emit(tenant=tenant, event_type="incident.acknowledged", payload={}, dedupe_key="k")
    assert again.pk == first.pk and WebhookDelivery.objects.count() == 1
    assert webhook_event_emit(tenant=tenant, event_type="unsubscribed.event", payload={}) is None


def test_a_claimed_delivery_is_not_sent_twice(tenant, endpoint, receiver):
    _, delivery = emit(tenant)
    now = timezone.now()
    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=now) == "succeeded"
    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=now) == "skipped"
    assert len(receiver.requests) == 1


def test_retry_after_is_respected(tenant, endpoint, receiver):
    receiver.answers[:] = [(503, {"Retry-After": "120"})]
    _, delivery = emit(tenant)
    t0 = timezone.now()
    webhook_delivery_attempt(delivery_id=delivery.pk, now=t0)
    delivery.refresh_from_db()
    assert delivery.next_attempt_at >= t0 + timedelta(seconds=120)


def test_retry_schedule_with_jitter_and_cap():
    from django.conf import settings

    assert retry_delay(attempts_made=len(settings.WEBHOOK_RETRY_SCHEDULE) + 1, retry_after=None) is None
    delays = {round(retry_delay(attempts_made=2, retry_after=None), 3) for _ in range(20)}
    assert len(delays) > 1 and all(270 <= d <= 330 for d in delays)
    assert retry_delay(attempts_made=1, retry_after=10**9) == max(settings.WEBHOOK_RETRY_SCHEDULE)


def test_410_disables_the_endpoint(tenant, endpoint, receiver):
    receiver.answers[:] = [(410, {})]
    _, delivery = emit(tenant, key="a")
    _, other = emit(tenant, key="b")
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "disabled"
    endpoint.refresh_from_db()
    assert endpoint.is_active is False and "410" in endpoint.disabled_reason
    assert webhook_delivery_attempt(delivery_id=other.pk) == "skipped"
    other.refresh_from_db()
    assert other.status == WebhookDelivery.Status.FAILED and len(receiver.requests) == 1


def test_redirects_are_not_followed(tenant, endpoint, receiver):
    receiver.answers[:] = [(302, {"Location": "http://127.0.0.1:1/elsewhere"})]
    _, delivery = emit(tenant)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "retrying"
    delivery.refresh_from_db()
    assert delivery.last_status_code == 302 and len(receiver.requests) == 1


def test_persistent_failure_dead_letters_and_tells_admins(
    tenant, endpoint, receiver, settings, django_user_model, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_SCHEDULE = [1, 1]
    admin = django_user_model.objects.create_user("boss", email="boss@clinic.example", password="x")
    TenantMembership.objects.create(user=admin, tenant=tenant, role="admin")
    receiver.answers[:] = [(500, {})]
    _, delivery = emit(tenant)
    now = timezone.now()
    outcomes = []
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(3):
            outcomes.append(webhook_delivery_attempt(delivery_id=delivery.pk, now=now + timedelta(seconds=2 * i)))
    assert outcomes == ["retrying", "retrying", "dead"]
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DEAD and delivery.attempts == 3
    assert [m.to for m in mail.outbox] == [["boss@clinic.example"]]
    assert "incident.acknowledged" in mail.outbox[0].subject and "incident" not in mail.outbox[0].body.split("\n")[-1]

    receiver.answers[:] = [(200, {})]
    with django_capture_on_commit_callbacks(execute=False):
        assert webhook_delivery_replay(delivery=delivery) is True
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {WebhookMessage.objects.get().msg_id}


def test_rotation_signs_with_old_and_new_secret(tenant, endpoint, receiver):
    old = endpoint.secret
    new = webhook_endpoint_rotate_secret(endpoint=endpoint)
    _, delivery = emit(tenant)
    webhook_delivery_attempt(delivery_id=delivery.pk)
    request = receiver.requests[0]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(request["body"], request["headers"])
