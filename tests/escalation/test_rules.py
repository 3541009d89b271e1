"""Who is paged and when: on-call rotation and overrides, quiet hours in the responder's time zone, business
hours and the urgency threshold for raising from an inbound SMS, escalation_requested, minimal PHI."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from channels_app import twilio_payloads
from conversations.signals import escalation_requested
from escalation import selectors, services
from escalation.models import (
    EscalationSettings,
    Incident,
    NotificationAttempt,
    Responder,
    Schedule,
    ScheduleMember,
    ScheduleOverride,
)
from escalation.services.messages import (
    attempt_sms_body,
    call_acknowledged_text,
    call_colleague_acknowledged_text,
    call_prompt_twiml,
    call_unacknowledged_text,
    sms_text,
    voice_text,
)
from tests.escalation.conftest import CLINIC_NUMBER, PATIENT_DOB, PATIENT_NAME, PATIENT_PHONE, PRIMARY, SYMPTOM

pytestmark = pytest.mark.django_db
UTC = dt.UTC
#: The links our texts and TwiML contain: the ack link, the call webhooks of an attempt (by id).
OUR_LINKS = re.compile(
    r"https://clinic\.example\.com/(?:a/[\w-]+\.[\w-]+"
    r"|twilio/escalation/call/\d+/(?:gather/\?round=\d+)?)(?![\w./?=-])"
)


def test_rotation_hands_off_at_local_time_across_dst(esc_tenant):
    a = Responder.objects.create(tenant=esc_tenant, name="A", phone="+15557770201")
    b = Responder.objects.create(tenant=esc_tenant, name="B", phone="+15557770202")
    c = Responder.objects.create(tenant=esc_tenant, name="C", phone="+15557770203")
    schedule = Schedule.objects.create(
        tenant=esc_tenant, name="Daily", rotation_start=dt.date(2026, 3, 7), rotation_days=1, handoff_time=dt.time(8, 0)
    )
    for i, r in enumerate([a, b, c]):
        ScheduleMember.objects.create(schedule=schedule, responder=r, position=i)
    ny = ZoneInfo("America/New_York")  # DST starts 2026-03-08 02:00
    at = lambda *args: dt.datetime(*args, tzinfo=ny)  # noqa: E731
    assert selectors.oncall_at(schedule=schedule, at=at(2026, 3, 7, 8, 0)).primary == a
    assert selectors.oncall_at(schedule=schedule, at=at(2026, 3, 8, 7, 59)).primary == a
    on = selectors.oncall_at(schedule=schedule, at=at(2026, 3, 8, 8, 0))  # 12:00 UTC now, not 13:00
    assert (on.primary, on.backup) == (b, c)
    assert selectors.oncall_at(schedule=schedule, at=at(2026, 3, 9, 9, 0)).backup == a
    # an override replaces the primary for its window only; the newest override wins
    start = at(2026, 3, 8, 20, 0)
    ScheduleOverride.objects.create(
        schedule=schedule, responder=c, starts_at=start, ends_at=start + dt.timedelta(hours=4)
    )
    ScheduleOverride.objects.create(
        schedule=schedule, responder=a, starts_at=start, ends_at=start + dt.timedelta(hours=1)
    )
    assert selectors.oncall_at(schedule=schedule, at=start + dt.timedelta(minutes=30)).primary == a
    assert selectors.oncall_at(schedule=schedule, at=start + dt.timedelta(hours=2)).primary == c
    assert selectors.oncall_at(schedule=schedule, at=start + dt.timedelta(hours=4)).primary == b


def test_quiet_hours_are_read_on_the_responders_clock(oncall, patient_interaction):
    primary = oncall["primary"]
    Responder.objects.filter(pk=primary.pk).update(timezone="Asia/Tokyo", quiet_start=dt.time(22), quiet_end=dt.time(7))
    primary.refresh_from_db()
    # 23:30 in Tokyo (quiet) is 09:30/10:30 in New York, the tenant's zone, where it is not night at all
    tokyo = ZoneInfo("Asia/Tokyo")
    night_in_tokyo = dt.datetime.combine(timezone.now().astimezone(tokyo).date(), dt.time(23, 30), tokyo)
    assert 9 <= night_in_tokyo.astimezone(ZoneInfo("America/New_York")).hour <= 10
    assert selectors.in_quiet_hours(responder=primary, at=night_in_tokyo)
    assert not selectors.in_quiet_hours(responder=primary, at=night_in_tokyo + dt.timedelta(hours=12))
    incident, _ = services.incident_raise(
        interaction=patient_interaction, urgency=4, reason="urgent words", at=night_in_tokyo
    )
    outcome = services.incident_run_step(incident_id=incident.pk, fence=incident.fence, now=night_in_tokyo)
    assert outcome.fired and outcome.attempt_ids == []
    assert set(NotificationAttempt.objects.filter(incident=incident).values_list("status", flat=True)) == {"skipped"}
    incident.refresh_from_db()
    assert incident.next_step_at == night_in_tokyo  # nobody reachable: the backup is next, at once


def test_emergency_urgency_rings_through_quiet_hours(oncall, patient_interaction):
    Responder.objects.filter(pk=oncall["primary"].pk).update(quiet_start=dt.time(0), quiet_end=dt.time(23, 59))
    incident, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="emergency phrase")
    outcome = services.incident_run_step(incident_id=incident.pk, fence=incident.fence)
    assert len(outcome.attempt_ids) == 2


def inbound(tenant, body):
    return twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid, from_=PATIENT_PHONE, to=CLINIC_NUMBER, body=body
    )


@pytest.mark.parametrize(
    ("body", "business_hours", "raised"),
    [
        ("I have chest pain", {}, True),  # after hours, emergency phrase
        ("I have chest pain", {str(d): [["00:00", "00:00"]] for d in range(1, 8)}, False),  # open all day
        ("can I book a cleaning?", {}, False),  # not urgent
    ],
)
def test_urgent_sms_raises_an_incident_after_hours(
    oncall, esc_tenant, twilio_post, django_capture_on_commit_callbacks, body, business_hours, raised, monkeypatch
):
    from escalation import tasks

    monkeypatch.setattr(tasks.incident_step, "apply_async", lambda *a, **k: None)
    EscalationSettings.objects.filter(tenant=esc_tenant).update(
        escalate_in_business_hours=False, business_hours=business_hours
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert twilio_post("/twilio/sms/", inbound(esc_tenant, body), tenant=esc_tenant).status_code == 200
    incidents = list(Incident.objects.filter(tenant=esc_tenant))
    assert len(incidents) == (1 if raised else 0)
    if raised:
        assert incidents[0].interaction.escalated and incidents[0].urgency == 5
        assert incidents[0].reason == "red flag: chest_pain_cardiac"


def test_threshold_and_disabled_settings(oncall, esc_tenant):
    config = EscalationSettings.objects.select_related("tenant").get(tenant=esc_tenant)
    now = timezone.now()
    assert services.incident_should_raise(config=config, urgency=4, at=now)
    config.urgency_threshold = 5
    assert not services.incident_should_raise(config=config, urgency=4, at=now)
    config.enabled = False
    assert not services.incident_should_raise(config=config, urgency=5, at=now)
    assert not services.incident_should_raise(config=None, urgency=5, at=now)


def test_escalation_requested_signal_raises_once(oncall, patient_interaction, monkeypatch):
    from escalation import tasks

    monkeypatch.setattr(tasks.incident_step, "apply_async", lambda *a, **k: None)
    for _ in range(2):
        escalation_requested.send(sender=None, interaction_id=patient_interaction.pk, urgency=5, reason="voicemail")
    assert Incident.objects.filter(interaction=patient_interaction).count() == 1


def test_texts_carry_no_patient_details(oncall, patient_interaction, twilio_stub):
    """Render every text a responder receives for the fixture patient: no name, DOB, symptom or number."""
    incident, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="emergency phrase")
    outcome = services.incident_run_step(incident_id=incident.pk, fence=incident.fence, dispatch=False)
    for item in outcome.outbound:
        services.attempt_deliver(outbound=item)
    tenant, config = incident.tenant, oncall["config"]
    sms_attempt = NotificationAttempt.objects.get(incident=incident, channel="sms")
    rendered = [
        attempt_sms_body(sms_attempt, config),
        voice_text(tenant=tenant, config=config),
        call_prompt_twiml(tenant=tenant, config=config, attempt_id=sms_attempt.pk),
        call_acknowledged_text(tenant),
        call_colleague_acknowledged_text(tenant),
        call_unacknowledged_text(tenant, config),
        *[m["body"] for m in twilio_stub.created("messages")],
        *[c["twiml"] + c["url"] for c in twilio_stub.created("calls")],
    ]
    forbidden = [
        *PATIENT_NAME.lower().split(),
        PATIENT_DOB,
        "1950",
        *SYMPTOM.lower().split(),
        PATIENT_PHONE,
        PATIENT_PHONE[2:],
    ]
    for text in rendered:
        # our own links carry only ids and the random ack token (which could spell "1950" or "pain" by
        # chance): take out exactly those shapes; anything else in a URL is checked like the rest of the text
        lowered = OUR_LINKS.sub("", text).lower()
        assert "://" not in lowered, text  # every link is one of those shapes
        assert not [w for w in forbidden if w in lowered], text
    body = attempt_sms_body(sms_attempt, config)
    assert body.startswith("Sunrise Clinic:") and "URGENT" in body and CLINIC_NUMBER in body
    assert re.search(r"https://clinic\.example\.com/a/[\w-]+\.[\w-]+$", body)
    assert len(body) <= 160  # one SMS segment


def test_templates_cannot_reach_beyond_the_allowed_fields(esc_tenant, oncall):
    config = oncall["config"]
    config.sms_template = "{clinic.__class__.__init__.__globals__} {link}"
    text = sms_text(tenant=esc_tenant, config=config, link="L")
    assert "__globals__" not in text and text.startswith("Sunrise Clinic: URGENT")
    config.sms_template = "{clinic} needs you: {link}"
    assert sms_text(tenant=esc_tenant, config=config, link="L") == "Sunrise Clinic needs you: L"
    assert PRIMARY not in sms_text(tenant=esc_tenant, config=config, link="L")
