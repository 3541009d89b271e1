"""Issue 19: screening a patient's message on commit uses the tenant the message came in with (the signal
carries it) instead of reading the message, its interaction and the tenant back: a routine text costs no query,
and the clinic's own emergency phrases still page."""

from __future__ import annotations

import pytest

from channels_app import twilio_payloads
from conversations.models import ChannelMessage
from escalation.hooks import screen_message
from escalation.models import EscalationSettings, Incident
from tests.escalation.conftest import CLINIC_NUMBER, PATIENT_PHONE

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_ladder(monkeypatch):
    from escalation import tasks

    monkeypatch.setattr(tasks.incident_step, "apply_async", lambda *a, **k: None)


def text_in(tenant, twilio_post, capture, body: str) -> ChannelMessage:
    params = twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid, from_=PATIENT_PHONE, to=CLINIC_NUMBER, body=body
    )
    with capture(execute=True):
        assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200
    return ChannelMessage.objects.filter(direction="inbound").latest("id")


def test_a_routine_text_is_screened_without_reading_anything(
    esc_tenant, twilio_post, django_capture_on_commit_callbacks, django_assert_num_queries
):
    body = "hey can i come in tues around 3?? need a cleaning"
    message = text_in(esc_tenant, twilio_post, django_capture_on_commit_callbacks, body)
    with django_assert_num_queries(0):
        assert screen_message(message_id=message.pk, text=body, tenant=esc_tenant) is None
    assert not Incident.objects.exists()


def test_the_clinics_own_emergency_phrase_pages_after_hours(
    oncall, esc_tenant, twilio_post, django_capture_on_commit_callbacks
):
    EscalationSettings.objects.filter(tenant=esc_tenant).update(escalate_in_business_hours=False, business_hours={})
    body = "my dad’s LVAD is beeping the red alarm again"
    text_in(esc_tenant, twilio_post, django_capture_on_commit_callbacks, body)
    assert not Incident.objects.exists()  # not an emergency by the core rules alone

    esc_tenant.emergency_phrases = [*(esc_tenant.emergency_phrases or []), "lvad", "red alarm"]
    esc_tenant.save(update_fields=["emergency_phrases"])
    text_in(esc_tenant, twilio_post, django_capture_on_commit_callbacks, body + " now")
    incident = Incident.objects.get(tenant=esc_tenant)
    assert incident.urgency == 5
