"""An emergency text never waits behind ordinary ones: with the SMS webhook accepting and the intake queued
(channels_app.sms.intake), a message the triage rules call an emergency is recorded, pages the on-call clinician
(call and text at once) and gets its safety reply on the escalation queue's own worker — here the only worker
running, as if the patient-reply worker were buried under a flood — while an ordinary text waits its turn."""

from __future__ import annotations

import pytest

from channels_app import twilio_payloads
from channels_app.models import InboundSms
from conversations.models import ChannelMessage
from escalation.models import EscalationSettings, Incident
from tests.escalation.conftest import CLINIC_NUMBER, PATIENT_PHONE, PRIMARY, build_oncall
from tests.escalation.test_worker import pages
from tests.processes import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_an_emergency_is_recorded_paged_and_answered_while_the_reply_worker_is_down(
    esc_tenant, stub_worker, twilio_stub_server, twilio_post, settings
):
    settings.SMS_INTAKE_INLINE = False  # what production runs
    build_oncall(esc_tenant)
    EscalationSettings.objects.filter(tenant=esc_tenant).update(escalate_in_business_hours=False, business_hours={})
    stub_worker()  # the escalation queue's worker only: nobody consumes the patient-reply queue
    routine = twilio_payloads.inbound_sms(
        account_sid=esc_tenant.twilio_account_sid, from_="+15551230078", to=CLINIC_NUMBER, body="any appts next wk?"
    )
    emergency = twilio_payloads.inbound_sms(
        account_sid=esc_tenant.twilio_account_sid,
        from_=PATIENT_PHONE,
        to=CLINIC_NUMBER,
        body="my dad’s face is drooping on one side and he can’t get his words out",
    )

    assert twilio_post("/twilio/sms/", routine, tenant=esc_tenant).status_code == 200
    assert twilio_post("/twilio/sms/", emergency, tenant=esc_tenant).status_code == 200

    incident = wait_for(lambda: Incident.objects.filter(tenant=esc_tenant).first(), timeout=30)
    assert incident.interaction.customer.identifiers.filter(value=PATIENT_PHONE).exists()
    wait_for(lambda: pages(twilio_stub_server, PRIMARY) == (1, 1), timeout=30)
    reply = wait_for(
        lambda: (
            ChannelMessage.objects.filter(idempotency_key=f"reply:{emergency['MessageSid']}")
            .exclude(status="pending")
            .first()
        ),
        timeout=30,
    )
    assert "911" in reply.body and reply.recipient == PATIENT_PHONE
    # the ordinary text is safe and waiting for the patient-reply worker, not lost and not recorded twice
    assert list(InboundSms.objects.values_list("message_sid", "lane", "status")) == [
        (routine["MessageSid"], "celery", "pending")
    ]
