"""A responder texting or calling the clinic line is a responder, not a patient: never an incident from their
words; during an open page "1 to acknowledge, 2 to be connected to the patient" (the bridge dials the patient
from the clinic's number). Twilio is the stub at its HTTP boundary."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from channels_app import twilio_payloads
from conversations.models import Interaction
from escalation import services
from escalation.models import Incident, ResponderContact
from escalation.services.responders import responder_contact_followup
from tests.escalation.conftest import (
    BACKUP,
    CLINIC_NUMBER,
    PATIENT_DOB,
    PATIENT_NAME,
    PATIENT_PHONE,
    PRIMARY,
    SYMPTOM,
)
from tests.factories import PhoneNumberFactory, TenantFactory

pytestmark = pytest.mark.django_db
RED_FLAG_WORDS = "Patient says crushing chest pain and can't breathe, overdose, suicidal — call 911"


def sms(tenant, from_, body):
    return twilio_payloads.inbound_sms(account_sid=tenant.twilio_account_sid, from_=from_, to=CLINIC_NUMBER, body=body)


def text_in(twilio_post, tenant, from_, body):
    params = sms(tenant, from_, body)
    assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200
    contact = ResponderContact.objects.get(provider_sid=params["MessageSid"])
    responder_contact_followup(contact_id=contact.pk)  # the task queued on commit
    contact.refresh_from_db()
    return contact


def assert_no_phi(text):
    for secret in (PATIENT_NAME, PATIENT_DOB, SYMPTOM, PATIENT_PHONE):
        assert secret not in text


def test_responder_sms_with_red_flag_words_raises_nothing_and_gets_the_menu(paged, twilio_post, twilio_stub):
    incident, _ = paged
    interactions, incidents = Interaction.objects.count(), Incident.objects.count()
    contact = text_in(twilio_post, incident.tenant, BACKUP, RED_FLAG_WORDS)  # the backup, paged or not yet
    assert Interaction.objects.count() == interactions and Incident.objects.count() == incidents
    # the backup was not paged yet (step 0 pages the primary): no page is open for them
    assert contact.action == "none"
    contact = text_in(twilio_post, incident.tenant, PRIMARY, RED_FLAG_WORDS)
    assert (contact.action, contact.incident_id) == ("menu", incident.pk)
    [reply] = twilio_stub.created("messages", to=PRIMARY)[-1:]
    assert "Reply 1 to acknowledge, 2 to be connected to the patient" in reply["body"]
    assert reply["from"] == CLINIC_NUMBER and RED_FLAG_WORDS not in reply["body"]
    assert_no_phi(reply["body"])
    incident.refresh_from_db()
    assert incident.status == "triggered" and Interaction.objects.count() == interactions


def test_responder_sms_1_acknowledges_and_offers_the_patient(paged, twilio_post, twilio_stub):
    incident, _ = paged
    contact = text_in(twilio_post, incident.tenant, PRIMARY, "1")
    incident.refresh_from_db()
    assert (incident.status, incident.ack_via, incident.acknowledged_by.phone) == ("acknowledged", "sms", PRIMARY)
    assert (
        contact.action == "ack" and "Reply 2 to be connected" in twilio_stub.created("messages", to=PRIMARY)[-1]["body"]
    )


def test_responder_sms_2_acknowledges_and_bridges_to_the_patient_from_the_clinic_number(
    paged, twilio_post, twilio_stub
):
    incident, _ = paged
    contact = text_in(twilio_post, incident.tenant, PRIMARY, "2")
    incident.refresh_from_db()
    assert incident.status == "acknowledged" and contact.action == "connect" and contact.bridge_sid
    [call] = [c for c in twilio_stub.created("calls", to=PRIMARY) if c["sid"] == contact.bridge_sid]
    assert call["from"] == CLINIC_NUMBER
    dial = re.search(r'<Dial callerId="([^"]+)"[^>]*><Number>([^<]+)</Number></Dial>', call["twiml"])
    assert dial and dial.groups() == (CLINIC_NUMBER, PATIENT_PHONE)
    assert PRIMARY not in call["twiml"]  # the clinician's own number is never shown to the patient
    assert_no_phi(twilio_stub.created("messages", to=PRIMARY)[-1]["body"])


def test_a_redelivered_responder_sms_is_answered_once(paged, twilio_post, twilio_stub):
    incident, _ = paged
    params = sms(incident.tenant, PRIMARY, "what is this?")
    for _ in range(2):
        assert twilio_post("/twilio/sms/", params, tenant=incident.tenant).status_code == 200
    contact = ResponderContact.objects.get()
    assert responder_contact_followup(contact_id=contact.pk) is True
    assert responder_contact_followup(contact_id=contact.pk) is False
    assert len(twilio_stub.created("messages", to=PRIMARY)) == 1  # one answer (the page went out before the stub)


def test_a_colleague_pressing_1_after_the_ack_is_told(paged, twilio_post, twilio_stub):
    incident, _ = paged
    services.incident_acknowledge(incident=incident, responder=None, via="admin")
    contact = text_in(twilio_post, incident.tenant, PRIMARY, "1")
    assert contact.action == "none"  # no page open for them any more (and nothing they acknowledged)


def test_another_tenants_responder_number_is_a_patient_here(paged, twilio_post, twilio_stub):
    """Tenant scoping: the same person texting another clinic is that clinic's patient."""
    other = TenantFactory()
    PhoneNumberFactory(tenant=other, number="+15550100003")
    params = twilio_payloads.inbound_sms(
        account_sid=other.twilio_account_sid, from_=PRIMARY, to="+15550100003", body="hello"
    )
    assert twilio_post("/twilio/sms/", params, tenant=other).status_code == 200
    assert not ResponderContact.objects.exists()
    assert Interaction.objects.filter(tenant=other).count() == 1


# --- calls ------------------------------------------------------------------------------------------------


def call_in(twilio_post, tenant, from_):
    params = twilio_payloads.inbound_call(account_sid=tenant.twilio_account_sid, from_=from_, to=CLINIC_NUMBER)
    response = twilio_post("/twilio/voice/", params, tenant=tenant)
    assert response.status_code == 200
    return params, response.content.decode()


def press(twilio_post, tenant, params, path, digits):
    data = {**params, "Digits": digits}
    response = twilio_post(path.replace(settings.PUBLIC_BASE_URL, ""), data, tenant=tenant)
    assert response.status_code == 200
    return response.content.decode()


def test_responder_calling_during_an_incident_hears_1_or_2_and_1_acknowledges(paged, twilio_post):
    incident, _ = paged
    tenant = incident.tenant
    interactions = Interaction.objects.count()
    params, twiml = call_in(twilio_post, tenant, PRIMARY)
    assert "Press 1 to acknowledge, 2 to be connected to the patient" in twiml and "<Gather" in twiml
    assert Interaction.objects.count() == interactions  # not a patient call
    assert_no_phi(twiml)
    action = re.search(r'action="([^"]+)"', twiml).group(1)
    twiml = press(twilio_post, tenant, params, action, "1")
    incident.refresh_from_db()
    assert (incident.status, incident.ack_via, incident.acknowledged_by.phone) == ("acknowledged", "keypress", PRIMARY)
    assert "Press 2 to be connected to the patient" in twiml
    twiml = press(twilio_post, tenant, params, action, "2")
    assert f'<Dial callerId="{CLINIC_NUMBER}" timeout="30"><Number>{PATIENT_PHONE}</Number></Dial>' in twiml
    assert ResponderContact.objects.get(provider_sid=params["CallSid"]).action == "connect"


def test_responder_calling_with_no_page_open_is_not_a_patient(oncall, esc_tenant, twilio_post):
    params, twiml = call_in(twilio_post, esc_tenant, PRIMARY)
    assert "No urgent page is open for you" in twiml and "<Hangup" in twiml
    assert not Interaction.objects.exists() and not Incident.objects.exists()


def test_a_key_for_an_incident_that_did_not_page_the_caller_does_nothing(paged, twilio_post):
    incident, _ = paged
    params, twiml = call_in(twilio_post, incident.tenant, BACKUP)  # the backup was not paged yet
    path = f"/twilio/escalation/responder/{incident.pk}/"
    twiml = press(twilio_post, incident.tenant, params, path, "2")
    incident.refresh_from_db()
    assert incident.status == "triggered" and "<Dial" not in twiml
