"""Triage of an inbound email: a Spanish emergency is answered with the Spanish safety reply (never the agent),
after hours raises exactly one incident, in opening hours exactly one staff alert; the patient's words never
appear in what staff are texted."""

from __future__ import annotations

import pytest

from channels_app.email.triage import email_triage
from conversations.models import ChannelMessage, StaffNotification, TriageDecision
from escalation.models import EscalationSettings, Incident
from tests.email.conftest import plain
from tests.email.ingesting import ingest_message

pytestmark = pytest.mark.django_db
OPEN_ALL_DAY = {str(d): [["00:00", "00:00"]] for d in range(1, 8)}


@pytest.mark.parametrize(("business_hours", "incidents", "alerts"), [({}, 1, 0), (OPEN_ALL_DAY, 0, 1)])
def test_spanish_emergency_email_gets_the_spanish_safety_reply(
    tenant, mailbox, patient, business_hours, incidents, alerts, django_capture_on_commit_callbacks, monkeypatch
):
    from escalation import tasks

    monkeypatch.setattr(tasks.incident_step, "apply_async", lambda *a, **k: None)
    monkeypatch.setattr(tasks.staff_alert_send_task, "delay", lambda pk: None)
    EscalationSettings.objects.create(tenant=tenant, business_hours=business_hours, escalate_in_business_hours=False)
    msg = plain(
        subject="urgente",
        body="Buenas noches, estoy embarazada de 33 semanas y estoy sangrando muchísimo, ya llené dos toallas.",
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest_message(msg)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = email_triage(inbound_id=result.email.pk)
    assert outcome.decision == "escalated" and outcome.urgency == 5
    reply = ChannelMessage.objects.get(channel="email", direction="outbound").body
    assert "Llame al 911" in reply and "cita" not in reply.lower() and "sangr" not in reply.lower()
    assert Incident.objects.count() == incidents
    assert StaffNotification.objects.filter(kind="emergency").count() == alerts
    assert "obstetric_bleeding" in TriageDecision.objects.get().codes
