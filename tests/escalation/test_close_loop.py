"""Closing the loop: paged colleagues are told who acknowledged (no PHI), the patient gets a holding message in
their language, and an incident is resolved with a note by SMS ("RESOLVED …") or in admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app import twilio_payloads
from conversations.models import ChannelMessage
from escalation import services
from escalation.models import Incident, IncidentNotice
from escalation.services.notices import incident_notify_acknowledged
from escalation.services.responders import responder_contact_followup
from identity.models import CustomerIdentifier
from tests.escalation.conftest import (
    BACKUP,
    CLINIC_NUMBER,
    PATIENT_DOB,
    PATIENT_NAME,
    PATIENT_PHONE,
    PRIMARY,
    SYMPTOM,
)
from tests.escalation.steps import staff_with_perms

pytestmark = pytest.mark.django_db


@pytest.fixture
def both_paged(paged, twilio_stub):
    """Step 0 paged the primary; step 1 (the backup) fires now, through the Twilio stub."""
    incident, token = paged
    Incident.objects.filter(pk=incident.pk).update(next_step_at=timezone.now() - timedelta(seconds=1))
    incident.refresh_from_db()
    outcome = services.incident_run_step(incident_id=incident.pk, fence=incident.fence, dispatch=False)
    for item in outcome.outbound:
        services.attempt_deliver(outbound=item)
    incident.refresh_from_db()
    return incident, token


def holding(incident):
    return ChannelMessage.objects.filter(idempotency_key=f"incident-holding:{incident.pk}").first()


def test_colleagues_paged_are_told_who_acknowledged_once_without_phi(both_paged, oncall, twilio_stub):
    incident, _ = both_paged
    services.incident_acknowledge(incident=incident, responder=oncall["primary"], via="link")
    assert incident_notify_acknowledged(incident_id=incident.pk) == {"colleagues": 1, "patient": 1}
    assert incident_notify_acknowledged(incident_id=incident.pk) == {"colleagues": 0, "patient": 0}  # redelivered
    [text] = [m for m in twilio_stub.created("messages", to=BACKUP) if "acknowledged by" in m["body"]]
    assert text["body"] == "Sunrise Clinic: the urgent page was acknowledged by Dr. Avery Chen. No action is needed."
    assert text["from"] == CLINIC_NUMBER
    assert not [m for m in twilio_stub.created("messages", to=PRIMARY) if "acknowledged by" in m["body"]]
    assert IncidentNotice.objects.filter(incident=incident, kind="colleague_ack").count() == 1


def test_patient_gets_a_holding_message_in_their_timeline(both_paged, oncall, patient_interaction):
    incident, _ = both_paged
    services.incident_acknowledge(incident=incident, responder=oncall["primary"], via="link")
    incident_notify_acknowledged(incident_id=incident.pk)
    message = holding(incident)
    assert message.recipient == PATIENT_PHONE and message.direction == "outbound" and message.status == "pending"
    assert message.body == (
        "Sunrise Clinic: Dr. Avery Chen has been notified and will call you shortly. If it gets worse, call 911."
    )
    for secret in (PATIENT_NAME, PATIENT_DOB, SYMPTOM):
        assert secret not in message.body
    assert message.interaction.customer_id == patient_interaction.customer_id  # in the patient's timeline
    assert any(t["text"] == message.body for t in message.interaction.transcript)


def test_holding_message_in_spanish_for_a_spanish_speaking_patient(both_paged, oncall, patient_interaction):
    incident, _ = both_paged
    patient_interaction.transcript = [{"role": "customer", "text": "Tengo dolor de pecho y no puedo respirar"}]
    patient_interaction.save(update_fields=["transcript"])
    services.incident_acknowledge(incident=incident, responder=oncall["primary"], via="sms")
    incident_notify_acknowledged(incident_id=incident.pk)
    assert "Dr. Avery Chen ha recibido su mensaje y le llamará en breve" in holding(incident).body


def test_no_holding_message_to_a_patient_who_said_stop(both_paged, oncall, twilio_stub):
    incident, _ = both_paged
    CustomerIdentifier.objects.filter(value=PATIENT_PHONE).update(sms_opted_out_at=timezone.now())
    services.incident_acknowledge(incident=incident, responder=oncall["primary"], via="link")
    assert incident_notify_acknowledged(incident_id=incident.pk)["patient"] == 0 and holding(incident) is None


def test_an_admin_ack_tells_colleagues_the_clinic_acknowledged_and_texts_no_patient(both_paged, twilio_stub):
    incident, _ = both_paged
    services.incident_acknowledge(incident=incident, responder=None, via="admin")
    assert incident_notify_acknowledged(incident_id=incident.pk) == {"colleagues": 2, "patient": 0}
    assert "acknowledged by Sunrise Clinic staff" in twilio_stub.created("messages", to=BACKUP)[-1]["body"]


def test_sms_resolved_with_a_note_acknowledges_and_resolves(paged, twilio_post, twilio_stub):
    incident, _ = paged
    params = twilio_payloads.inbound_sms(
        account_sid=incident.tenant.twilio_account_sid,
        from_=PRIMARY,
        to=CLINIC_NUMBER,
        body="resolved: spoke to patient, sent to ER",
    )
    assert twilio_post("/twilio/sms/", params, tenant=incident.tenant).status_code == 200
    incident.refresh_from_db()
    assert incident.status == "acknowledged" and incident.resolved_at is not None
    assert (incident.resolved_via, incident.resolved_by.phone, incident.resolution_note) == (
        "sms",
        PRIMARY,
        "spoke to patient, sent to ER",
    )
    contact = incident.contacts.get()
    responder_contact_followup(contact_id=contact.pk)
    reply = twilio_stub.created("messages", to=PRIMARY)[-1]["body"]
    assert "marked resolved" in reply and "ER" not in reply  # the note is never texted


def test_admin_resolve_action_with_a_note_is_tenant_scoped(
    client,
    django_user_model,
    paged,
    foreign_incident,
):
    incident, _ = paged
    client.force_login(staff_with_perms(django_user_model, incident.tenant))
    data = {"action": "resolve_selected", "_selected_action": [str(incident.pk), str(foreign_incident.pk)]}
    page = client.post("/admin/escalation/incident/", data)
    assert page.status_code == 200 and b"Resolve incidents" in page.content
    done = client.post("/admin/escalation/incident/", {**data, "apply": "Resolve", "note": "called back, stable"})
    assert done.status_code == 302
    incident.refresh_from_db()
    foreign_incident.refresh_from_db()
    assert (incident.status, incident.resolution_note, incident.resolved_via) == (
        "acknowledged",
        "called back, stable",
        "admin",
    )
    assert foreign_incident.resolved_at is None  # another tenant's incident is not in the admin's queryset
    page = client.get(f"/admin/escalation/incident/{incident.pk}/change/")
    assert b"resolved by" in page.content
