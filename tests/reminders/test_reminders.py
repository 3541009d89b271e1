"""Appointment reminders (issue 15, item 3) with a frozen clock: each lead sent once, quiet hours, STOP, replies
through the real SMS webhook (confirm, reschedule through the agent, cancel), and the no-show sweep."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.utils import timezone

from channels_app import twilio_payloads
from channels_app.reminders import reminders_send_due
from channels_app.sms.replies import sms_reply
from conversations.appointments import appointment_book
from conversations.models import AgentSettings, Appointment, AppointmentReminder, ChannelMessage, ReminderSettings
from conversations.reminders.services import appointment_check_in, no_show_sweep, reminder_answer_kind
from identity.services import customer_resolve
from providers.sms import LocmemSmsBackend

pytestmark = pytest.mark.django_db
PATIENT = "+15551230001"
CLINIC = "+15550100001"
ALL_DAY = {d: [["00:00", "24:00"]] for d in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


@pytest.fixture
def clinic(tenant):
    AgentSettings.objects.create(tenant=tenant, bookable_hours=ALL_DAY)
    ReminderSettings.objects.create(tenant=tenant, quiet_start=time(0), quiet_end=time(0))  # no quiet hours
    return tenant


@pytest.fixture
def patient(clinic):
    return customer_resolve(
        tenant=clinic, phone=PATIENT, display_name="Maria Gonzalez", verified_kinds=("phone",)
    ).customer


def _slot(hours: float):
    """A bookable start ``hours`` from now, on the half hour."""
    at = timezone.now() + timedelta(hours=hours)
    return at.replace(minute=30 if at.minute < 30 else 0, second=0, microsecond=0) + (
        timedelta(hours=1) if at.minute >= 30 else timedelta()
    )


def _book(clinic, patient, hours: float) -> Appointment:
    return appointment_book(tenant=clinic, customer=patient, starts_at=_slot(hours))


def _reminder_sms():
    return list(ChannelMessage.objects.filter(idempotency_key__startswith="reminder:").order_by("pk"))


def _text(clinic, twilio_post, body: str) -> str:
    """The patient texts ``body`` to the clinic (signed webhook); returns the reply the worker sends."""
    params = twilio_payloads.inbound_sms(account_sid=clinic.twilio_account_sid, from_=PATIENT, to=CLINIC, body=body)
    assert twilio_post("/twilio/sms/", params, tenant=clinic).status_code == 200
    inbound = ChannelMessage.objects.get(provider_id=params["MessageSid"])
    sms_reply(inbound_id=inbound.pk)
    return LocmemSmsBackend.outbox[-1]["body"]


def test_each_lead_is_sent_once_at_its_time(clinic, patient):
    appt = _book(clinic, patient, 30)
    assert reminders_send_due(now=appt.starts_at - timedelta(hours=25)) == {"sent": 0, "skipped": 0}
    day_before = appt.starts_at - timedelta(hours=24) + timedelta(minutes=1)
    assert reminders_send_due(now=day_before)["sent"] == 1
    assert reminders_send_due(now=day_before + timedelta(minutes=1))["sent"] == 0  # beat again: nothing twice
    two_hours = appt.starts_at - timedelta(hours=2) + timedelta(seconds=30)
    assert reminders_send_due(now=two_hours)["sent"] == 1
    assert reminders_send_due(now=two_hours + timedelta(minutes=5))["sent"] == 0
    rows = AppointmentReminder.objects.filter(appointment=appt).order_by("due_at")
    assert [(r.kind, r.status, r.channels) for r in rows] == [
        ("lead-1440", "sent", ["sms"]),
        ("lead-120", "sent", ["sms"]),
    ]
    sms = _reminder_sms()
    assert [m.recipient for m in sms] == [PATIENT, PATIENT]
    body = sms[0].body
    assert clinic.short_name in body and "Reply C to confirm, R to reschedule, X to cancel" in body
    assert "Maria" not in body and "Gonzalez" not in body  # no PHI beyond day and time


def test_booked_inside_a_lead_gets_only_the_later_reminder(clinic, patient):
    appt = _book(clinic, patient, 5)  # the 24-hour reminder's moment had passed when it was booked
    assert reminders_send_due(now=appt.starts_at - timedelta(hours=3))["sent"] == 0
    assert reminders_send_due(now=appt.starts_at - timedelta(minutes=119))["sent"] == 1
    assert list(AppointmentReminder.objects.values_list("kind", flat=True)) == ["lead-120"]


def test_after_an_outage_only_the_nearest_reminder_goes(clinic, patient):
    appt = _book(clinic, patient, 30)
    assert reminders_send_due(now=appt.starts_at - timedelta(minutes=90)) == {"sent": 1, "skipped": 0}
    rows = dict(AppointmentReminder.objects.values_list("kind", "status"))
    assert rows == {"lead-120": "sent", "lead-1440": "skipped"}
    assert len(_reminder_sms()) == 1


def test_a_moved_appointment_is_reminded_for_its_new_time(clinic, patient):
    from conversations.appointments import appointment_reschedule

    appt = _book(clinic, patient, 30)
    reminders_send_due(now=appt.starts_at - timedelta(hours=23))
    moved = appointment_reschedule(appointment=appt, starts_at=appt.starts_at + timedelta(hours=1))
    reminders_send_due(now=moved.starts_at - timedelta(minutes=100))
    assert AppointmentReminder.objects.filter(appointment=appt, status="sent").count() == 2
    assert AppointmentReminder.objects.filter(starts_at=moved.starts_at, kind="lead-120").exists()


def test_quiet_hours_hold_the_reminder_until_they_end(clinic, patient):
    appt = _book(clinic, patient, 30)
    due = appt.starts_at - timedelta(hours=24) + timedelta(minutes=1)
    local = due.astimezone(clinic.tzinfo)
    settings = ReminderSettings.objects.get(tenant=clinic)
    settings.quiet_start = (local - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    settings.quiet_end = (local + timedelta(hours=1)).time().replace(second=0, microsecond=0)
    settings.save()
    assert reminders_send_due(now=due)["sent"] == 0
    assert reminders_send_due(now=due + timedelta(minutes=59))["sent"] == 0
    assert reminders_send_due(now=due + timedelta(minutes=61))["sent"] == 1


def test_quiet_hours_lasting_past_the_start_skip_the_reminder(clinic, patient):
    appt = _book(clinic, patient, 30)
    due = appt.starts_at - timedelta(minutes=119)
    local = due.astimezone(clinic.tzinfo)
    settings = ReminderSettings.objects.get(tenant=clinic)
    settings.lead_minutes = [120]
    settings.quiet_start = (local - timedelta(minutes=30)).time().replace(second=0, microsecond=0)
    settings.quiet_end = (local + timedelta(hours=3)).time().replace(second=0, microsecond=0)
    settings.save()
    assert reminders_send_due(now=due) == {"sent": 0, "skipped": 1}
    assert reminders_send_due(now=due + timedelta(minutes=1)) == {"sent": 0, "skipped": 0}
    assert AppointmentReminder.objects.get().skip_reason == "quiet_hours"
    assert _reminder_sms() == []


def test_stop_is_respected(clinic, patient, twilio_post):
    appt = _book(clinic, patient, 30)
    params = twilio_payloads.inbound_sms(account_sid=clinic.twilio_account_sid, from_=PATIENT, to=CLINIC, body="Stop")
    twilio_post("/twilio/sms/", params, tenant=clinic)
    assert reminders_send_due(now=appt.starts_at - timedelta(hours=23)) == {"sent": 0, "skipped": 1}
    assert AppointmentReminder.objects.get().skip_reason == "no_contact"
    assert _reminder_sms() == []


def test_disabled_tenant_sends_nothing(clinic, patient):
    ReminderSettings.objects.filter(tenant=clinic).update(enabled=False)
    appt = _book(clinic, patient, 30)
    assert reminders_send_due(now=appt.starts_at - timedelta(hours=23))["sent"] == 0


@pytest.mark.parametrize("answer", ["yes I'll be there", "👍", "C", "Yes!! see you then", "si, ahí estaré"])
def test_confirming_replies(clinic, patient, twilio_post, answer):
    appt = _book(clinic, patient, 30)
    reminders_send_due(now=appt.starts_at - timedelta(hours=23))
    reply = _text(clinic, twilio_post, answer)
    assert ("queda confirmada" if answer.startswith("si") else "confirmed") in reply.lower()
    appt.refresh_from_db()
    assert appt.confirmed_at is not None and appt.status == "booked"
    assert AppointmentReminder.objects.get().answer == "confirmed"


@pytest.mark.parametrize("answer", ["cancela por favor", "X", "sorry I can’t make it, please cancel"])
def test_cancelling_replies(clinic, patient, twilio_post, answer):
    appt = _book(clinic, patient, 30)
    reminders_send_due(now=appt.starts_at - timedelta(hours=23))
    reply = _text(clinic, twilio_post, answer)
    assert ("está cancelada" if answer.startswith("cancela") else "cancelled") in reply  # in the patient's language
    appt.refresh_from_db()
    assert appt.status == "cancelled"
    assert AppointmentReminder.objects.get().answer == "cancelled"


def test_move_it_to_another_day_is_proposed_by_the_agent_then_moved_on_yes(clinic, patient, twilio_post):
    appt = _book(clinic, patient, 30)
    reminders_send_due(now=appt.starts_at - timedelta(hours=23))
    target = appt.starts_at.astimezone(clinic.tzinfo) + timedelta(days=2)
    ask = _text(clinic, twilio_post, f"hmm can we move it to {target:%A}?")
    assert f"{target:%A}" in ask and "Shall I move it" in ask
    appt.refresh_from_db()
    assert appt.starts_at != target  # nothing moves before a yes
    _text(clinic, twilio_post, "yes please")
    appt.refresh_from_db()
    assert appt.starts_at == target and Appointment.objects.filter(status="booked").count() == 1
    assert AppointmentReminder.objects.get().answer == "reschedule"


def test_r_asks_when(clinic, patient, twilio_post):
    appt = _book(clinic, patient, 30)
    reminders_send_due(now=appt.starts_at - timedelta(hours=23))
    assert "when would you like to move it" in _text(clinic, twilio_post, "R")


def test_a_question_is_answered_by_the_agent_and_the_reminder_stays_open(clinic, patient, twilio_post):
    appt = _book(clinic, patient, 30)
    reminders_send_due(now=appt.starts_at - timedelta(hours=23))
    reply = _text(clinic, twilio_post, "when is my appointment again?")
    assert "Your appointment is on" in reply
    assert AppointmentReminder.objects.get().answer == ""
    assert "confirmed" in _text(clinic, twilio_post, "ok 👍").lower()


@pytest.mark.parametrize(
    "text, kind",
    [
        ("Yes", "confirmed"),
        ("yep 👍", "confirmed"),
        ("Confirmo, gracias", "confirmed"),
        ("no I won't be there", "cancelled"),
        ("I can't come, cancel it", "cancelled"),
        ("Can we do later that day?", "reschedule"),
        ("necesito cambiar la hora", "reschedule"),
        ("what's the parking like?", None),
        ("not sure yet", None),
    ],
)
def test_answer_kinds(text, kind):
    assert reminder_answer_kind(text) == kind


def _past_appointment(clinic, patient, minutes_ago: int) -> Appointment:
    start = timezone.now() - timedelta(minutes=minutes_ago)
    return Appointment.objects.create(
        tenant=clinic, customer=patient, starts_at=start, ends_at=start + timedelta(minutes=30)
    )


def test_no_show_sweep_marks_only_who_never_came(clinic, patient):
    missed = _past_appointment(clinic, patient, 45)
    came = _past_appointment(clinic, patient, 120)
    appointment_check_in(appointment=came)
    just_started = _past_appointment(clinic, patient, 10)
    assert no_show_sweep() == 1
    assert no_show_sweep() == 0
    statuses = {a.pk: a.status for a in Appointment.objects.all()}
    assert statuses == {missed.pk: "no_show", came.pk: "booked", just_started.pk: "booked"}


def test_no_show_sweep_respects_the_tenant_setting(clinic, patient):
    ReminderSettings.objects.filter(tenant=clinic).update(record_no_shows=False)
    _past_appointment(clinic, patient, 45)
    assert no_show_sweep() == 0


def test_a_busy_day_reaches_every_appointment_past_rows_that_need_nothing(clinic, patient, other_tenant):
    """Rows the sweep skips (a clinic with reminders off, appointments reminded already) never hide a later
    appointment, however small the batch."""
    from conversations.reminders.services import reminders_due
    from tests.factories import AppointmentFactory, CustomerFactory

    ours = [_book(clinic, patient, 30 + i) for i in range(3)]
    ReminderSettings.objects.create(tenant=other_tenant, enabled=False)
    for i in range(3):  # earlier than ours, in a clinic that turned reminders off
        AppointmentFactory(
            customer=CustomerFactory(tenant=other_tenant), starts_at=ours[0].starts_at - timedelta(hours=i + 1)
        )
    now = ours[-1].starts_at - timedelta(hours=24) + timedelta(minutes=1)
    due, _skipped = reminders_due(now=now, limit=2)
    assert sorted(d.appointment.pk for d in due) == sorted(a.pk for a in ours)
    reminders_send_due(now=now)
    due, _skipped = reminders_due(now=now, limit=2)  # all three reminded: nothing is due, nothing is hidden
    assert due == []
