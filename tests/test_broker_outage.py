"""With the broker (Redis) down, writes that queue Celery tasks on commit still succeed: the callback is
``robust`` (logged), and the beat sweeper / redrive picks the work up later."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.appointments import appointment_cancel
from conversations.models import Appointment
from conversations.webhooks.models import WebhookDelivery
from conversations.webhooks.services import webhook_event_emit
from identity.services import customer_resolve
from tests.broker import broker_down
from tests.factories import AppointmentFactory, WebhookEndpointFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dead_broker():
    """Point this process's Celery app at a closed loopback port (a real connection refused), then restore."""
    with broker_down():
        yield


def test_emitting_a_webhook_with_the_broker_down_commits(
    tenant, dead_broker, django_capture_on_commit_callbacks, caplog
):
    WebhookEndpointFactory(tenant=tenant, events=["incident.acknowledged"])
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True) as callbacks:
        message = webhook_event_emit(tenant=tenant, event_type="incident.acknowledged", payload={}, dedupe_key="k")
    assert len(callbacks) == 1 and "Error calling" in caplog.text  # the queuing failed, and was only logged
    delivery = WebhookDelivery.objects.get(message=message)
    assert delivery.status == "pending" and delivery.next_attempt_at <= timezone.now()  # the sweeper's job


def test_cancelling_an_appointment_with_the_broker_down_commits(
    tenant, dead_broker, django_capture_on_commit_callbacks, caplog
):
    customer = customer_resolve(tenant=tenant, phone="+14155550001").customer
    start = timezone.now() + timedelta(days=2)
    appointment = AppointmentFactory(customer=customer, starts_at=start)
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert appointment_cancel(appointment=appointment) is True
    assert callbacks and "Error calling" in caplog.text
    assert Appointment.objects.get(pk=appointment.pk).status == "cancelled"
