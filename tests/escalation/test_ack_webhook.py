"""Acknowledging an incident emits the ``incident.acknowledged`` outbound webhook, once, without PHI."""

import json

import pytest

from conversations.webhooks.models import WebhookEndpoint, WebhookMessage
from escalation import services
from tests.escalation.conftest import PATIENT_DOB, PATIENT_NAME, PATIENT_PHONE, SYMPTOM

pytestmark = pytest.mark.django_db


def test_ack_emits_incident_acknowledged_once(oncall, patient_interaction, esc_tenant):
    WebhookEndpoint.objects.create(
        tenant=esc_tenant, url="https://hooks.example.com/cs", events=["incident.acknowledged"]
    )
    incident, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="emergency phrase")
    assert services.incident_acknowledge(incident=incident, responder=oncall["primary"], via="link")
    assert not services.incident_acknowledge(incident=incident, responder=oncall["backup"], via="sms")

    message = WebhookMessage.objects.get()
    assert message.event_type == "incident.acknowledged"
    data = message.payload["data"]
    assert data["incident_id"] == str(incident.pk) and data["ack_via"] == "link"
    assert data["acknowledged_by_responder_id"] == oncall["primary"].pk and data["seconds_to_ack"] >= 0
    body = json.dumps(message.payload)
    for detail in (PATIENT_NAME, PATIENT_DOB, PATIENT_PHONE, SYMPTOM):
        assert detail not in body


def test_no_endpoint_no_message(oncall, patient_interaction):
    incident, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="x")
    services.incident_acknowledge(incident=incident, responder=None, via="link")
    assert not WebhookMessage.objects.exists()
