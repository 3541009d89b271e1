"""Triage on the SMS channel, through the signed webhook and the reply task: an emergency gets the safety reply
in the patient's language (never the booking menu) and exactly one incident after hours, or exactly one staff
alert (notification, on-duty SMS, staff email) in opening hours; an urgent message joins the callback queue.
The LLM's second opinion (a local OpenAI-compatible stub) can raise the level, never lower it."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from channels_app import twilio_payloads
from channels_app.sms.replies import sms_reply
from conversations.models import AgentSettings, ChannelMessage, StaffNotification, TriageDecision
from escalation.models import EscalationSettings, Incident
from identity.models import TenantMembership
from providers.sms import LocmemSmsBackend
from tests.escalation.conftest import CLINIC_NUMBER, PATIENT_PHONE
from tests.stubs.openai_api import openai_stub

pytestmark = pytest.mark.django_db
OPEN_ALL_DAY = {str(d): [["00:00", "00:00"]] for d in range(1, 8)}  # escalation: 00:00-00:00 = all day
BOOKING_MENU = ("book", "appointment", "reschedule")


@pytest.fixture(autouse=True)
def no_ladder(monkeypatch):
    """The ladder's first step is not run here; the staff alert task runs in this process (what the worker does)."""
    from escalation import tasks
    from escalation.services.staff_alerts import staff_alert_send

    monkeypatch.setattr(tasks.incident_step, "apply_async", lambda *a, **k: None)
    monkeypatch.setattr(tasks.staff_alert_send_task, "delay", lambda pk: staff_alert_send(notification_id=pk))


def text_in(tenant, twilio_post, capture, body: str) -> ChannelMessage:
    """The patient texts ``body``; the webhook's on-commit work runs; the reply task runs. Returns the reply."""
    params = twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid, from_=PATIENT_PHONE, to=CLINIC_NUMBER, body=body
    )
    with capture(execute=True):
        assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200
    inbound = ChannelMessage.objects.filter(direction="inbound").latest("id")
    with capture(execute=True):
        return sms_reply(inbound_id=inbound.pk)


def after_hours(tenant):
    EscalationSettings.objects.filter(tenant=tenant).update(escalate_in_business_hours=False, business_hours={})


def opening_hours(tenant):
    EscalationSettings.objects.filter(tenant=tenant).update(
        escalate_in_business_hours=False, business_hours=OPEN_ALL_DAY
    )


def test_spanish_emergency_after_hours_gets_the_safety_reply_and_one_incident(
    oncall, esc_tenant, twilio_post, django_capture_on_commit_callbacks
):
    after_hours(esc_tenant)
    reply = text_in(esc_tenant, twilio_post, django_capture_on_commit_callbacks, "mi esposa se desmayó y no responde")
    assert "Llame al 911" in reply.body and not any(word in reply.body.lower() for word in BOOKING_MENU)
    incident = Incident.objects.get(tenant=esc_tenant)
    assert incident.urgency == 5 and incident.reason == "red flag: unresponsive"
    # the next message in the same emergency raises nothing new
    text_in(esc_tenant, twilio_post, django_capture_on_commit_callbacks, "sigue sin despertar por favor ayuda")
    assert Incident.objects.filter(tenant=esc_tenant).count() == 1


def test_emergency_in_opening_hours_alerts_staff_once_and_pages_nobody(
    oncall, esc_tenant, twilio_post, django_capture_on_commit_callbacks, settings
):
    settings.SMS_BACKEND = "providers.sms.LocmemSmsBackend"
    LocmemSmsBackend.outbox.clear()
    opening_hours(esc_tenant)
    AgentSettings.objects.update_or_create(tenant=esc_tenant, defaults={"handoff_number": "+15550109999"})
    staff = get_user_model().objects.create_user("frontdesk", "frontdesk@example.com", "pw-not-used-9")
    TenantMembership.objects.create(tenant=esc_tenant, user=staff, role=TenantMembership.Role.STAFF)
    reply = text_in(
        esc_tenant, twilio_post, django_capture_on_commit_callbacks, "my chest feels crushed and it’s going down my arm"
    )
    assert "911" in reply.body and not any(word in reply.body.lower() for word in BOOKING_MENU)
    assert not Incident.objects.exists()
    notice = StaffNotification.objects.get(kind="emergency")
    assert notice.alerted_at is not None
    on_duty = [m for m in LocmemSmsBackend.outbox if m["to"] == "+15550109999"]
    assert len(on_duty) == 1 and "chest" not in on_duty[0]["body"].lower()
    assert [m.to for m in mail.outbox] == [["frontdesk@example.com"]] and "chest" not in mail.outbox[0].body.lower()
    text_in(esc_tenant, twilio_post, django_capture_on_commit_callbacks, "still hurts a lot")
    assert StaffNotification.objects.filter(kind="emergency").count() == 1 and len(mail.outbox) == 1


def test_urgent_message_joins_the_callback_queue_and_pages_nobody(
    oncall, esc_tenant, twilio_post, django_capture_on_commit_callbacks
):
    after_hours(esc_tenant)
    reply = text_in(
        esc_tenant, twilio_post, django_capture_on_commit_callbacks, "burns so bad when i pee since yesterday"
    )
    assert "911" not in reply.body
    assert not Incident.objects.exists()
    assert StaffNotification.objects.filter(kind="urgent").count() == 1


def test_a_routine_message_with_emergency_words_gets_the_agent(
    oncall, esc_tenant, twilio_post, django_capture_on_commit_callbacks
):
    after_hours(esc_tenant)
    reply = text_in(
        esc_tenant, twilio_post, django_capture_on_commit_callbacks, "I had chest pain last year, want a follow-up"
    )
    assert "911" not in reply.body
    assert not Incident.objects.exists() and not StaffNotification.objects.filter(kind="emergency").exists()


class Judge:
    """An OpenAI-compatible stub's answer to the triage prompt: ``level``, or an HTTP ``status`` error, or a
    ``delay`` (seconds) longer than the triage timeout."""

    def __init__(self, level: str | None = None, status: int = 0, delay: float = 0.0):
        self.level, self.status, self.delay = level, status, delay

    def __call__(self, request: dict) -> dict:
        if self.delay:
            time.sleep(self.delay)
        return {"content": json.dumps({"level": self.level, "red_flags": [], "rationale": "stub"})}


@pytest.fixture
def judged(settings):
    """``judged(judge)`` points triage's second opinion at a stub answering with ``judge`` for the test."""
    with ExitStack() as stack:

        def use(judge: Judge):
            server = stack.enter_context(openai_stub(judge))
            server.fail_status = judge.status
            settings.OPENAI_API_KEY = "sk-test-stub"
            settings.OPENAI_BASE_URL = server.base_url
            settings.TRIAGE_LLM = True
            settings.AGENT_BACKEND = "local"
            settings.TRIAGE_LLM_TIMEOUT_SECONDS = 1.0
            return server

        yield use


@pytest.mark.parametrize(
    "judge", [Judge(level="routine"), Judge(status=500), Judge(level="maybe"), Judge(level="emergency", delay=3.0)]
)
def test_the_llm_never_lowers_a_rules_emergency(
    judge, judged, oncall, esc_tenant, twilio_post, django_capture_on_commit_callbacks
):
    after_hours(esc_tenant)
    judged(judge)
    reply = text_in(esc_tenant, twilio_post, django_capture_on_commit_callbacks, "I took like 30 of my sleeping pills")
    assert "1-800-222-1222" in reply.body
    assert Incident.objects.filter(tenant=esc_tenant).count() == 1
    decision = TriageDecision.objects.get()
    assert (decision.level, decision.rules_level, decision.engine) == ("emergency", "emergency", "rules+llm")
    assert decision.disagreement == (judge.level == "routine")


def test_an_llm_emergency_pages_when_the_rules_say_routine_and_the_disagreement_is_stored(
    judged, oncall, esc_tenant, twilio_post, django_capture_on_commit_callbacks
):
    after_hours(esc_tenant)
    judged(Judge(level="emergency"))
    reply = text_in(
        esc_tenant,
        twilio_post,
        django_capture_on_commit_callbacks,
        "grandpa just isnt himself today, can someone call me",
    )
    assert "911" in reply.body and not any(word in reply.body.lower() for word in BOOKING_MENU)
    assert Incident.objects.filter(tenant=esc_tenant).count() == 1
    decision = TriageDecision.objects.get()
    assert (decision.level, decision.rules_level, decision.llm_level, decision.disagreement) == (
        "emergency",
        "routine",
        "emergency",
        True,
    )
