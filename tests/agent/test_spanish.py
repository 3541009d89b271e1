"""Spanish (issue 15, item 7): a Spanish-speaking patient books by SMS through the real webhook and gets a Spanish
answer, a Spanish confirmation and a Spanish reminder; the language is remembered on the customer, short messages
never flip it, "in English please" does; the catalogs need no gettext binaries."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import translation

from channels_app import twilio_payloads
from channels_app.confirmations import appointment_send_confirmation
from channels_app.reminders import reminders_send_due
from channels_app.sms.replies import sms_reply
from conversations.agent.dates import say_day
from conversations.language import detect_language, requested_language
from conversations.models import Appointment, AppointmentReminder, ChannelMessage, ReminderSettings
from identity.models import Customer
from providers.sms import LocmemSmsBackend
from tests.clock import local, next_weekday

pytestmark = pytest.mark.django_db
PATIENT = "+15551230001"
CLINIC = "+15550100001"
TUESDAY = 1


def _text(tenant, twilio_post, body: str) -> str:
    params = twilio_payloads.inbound_sms(account_sid=tenant.twilio_account_sid, from_=PATIENT, to=CLINIC, body=body)
    assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200
    sms_reply(inbound_id=ChannelMessage.objects.get(provider_id=params["MessageSid"]).pk)
    return LocmemSmsBackend.outbox[-1]["body"]


def test_spanish_patient_books_and_gets_spanish_confirmation_and_reminder(tenant, twilio_post):
    from datetime import time

    ReminderSettings.objects.create(tenant=tenant, quiet_start=time(0), quiet_end=time(0))
    tuesday = next_weekday(tenant, TUESDAY)
    reply = _text(tenant, twilio_post, "Hola, quisiera una cita para el martes a las 3 de la tarde por favor")
    appointment = Appointment.objects.get()
    assert appointment.starts_at == local(tenant, tuesday, 15)
    with translation.override("es"):
        said = say_day(tuesday)  # "martes 8 de diciembre"
    assert said.startswith("martes ") and " de " in said
    assert f"Su cita queda reservada para el {said} a las 3:00 PM" in reply
    customer = Customer.objects.get(pk=appointment.customer_id)
    assert customer.preferred_language == "es"

    appointment_send_confirmation(appointment_id=appointment.pk, change="booked", version=appointment.version)
    confirmation = ChannelMessage.objects.get(idempotency_key=f"appointment:{appointment.pk}:v1")
    assert "su cita queda confirmada para el martes" in confirmation.body and "3:00 PM" in confirmation.body

    reminders_send_due(now=appointment.starts_at - timedelta(hours=23))
    reminder = ChannelMessage.objects.get(idempotency_key__startswith="reminder:")
    assert "le recordamos su cita del martes" in reminder.body and "Responda C para confirmar" in reminder.body
    assert AppointmentReminder.objects.get().language == "es"
    answer = _text(tenant, twilio_post, "Sí, allí estaré 👍")
    assert "queda confirmada" in answer
    appointment.refresh_from_db()
    assert appointment.confirmed_at is not None


def test_spanish_cancel_and_when_is_my_appointment(tenant, twilio_post):
    _text(tenant, twilio_post, "Buenas tardes, necesito una cita el martes a las 10 de la mañana")
    assert Appointment.objects.get().starts_at == local(tenant, next_weekday(tenant, TUESDAY), 10)
    assert "Su cita es el martes" in _text(tenant, twilio_post, "¿cuándo es mi cita?")
    reply = _text(tenant, twilio_post, "quiero cancelar mi cita, gracias")
    assert "está cancelada" in reply
    assert Appointment.objects.get().status == "cancelled"


def test_short_messages_keep_the_language_and_english_please_switches(tenant, twilio_post):
    _text(tenant, twilio_post, "Hola, quiero hacer una cita para el jueves")
    reply = _text(tenant, twilio_post, "10am")  # a bare time: still Spanish
    assert Customer.objects.get().preferred_language == "es"
    assert "Su cita queda reservada para el jueves" in reply
    reply = _text(tenant, twilio_post, "Sorry, in English please. When is my appointment?")
    assert Customer.objects.get().preferred_language == "en"
    assert "Your appointment is on Thursday" in reply


@pytest.mark.parametrize(
    "text, lang",
    [
        ("cancela por favor", "es"),
        ("Necesito cambiar la hora de mi cita", "es"),
        ("hola!", "es"),
        ("Hi, I'd like to book an appointment", "en"),
        ("2 PM", None),
        ("ok 👍", None),
        ("C", None),
    ],
)
def test_detection(text, lang):
    assert detect_language(text) == lang


def test_explicit_requests():
    assert requested_language("¿Habla español?") == "es"
    assert requested_language("can you write in english please") == "en"
    assert requested_language("tuesday at 2") is None


def test_catalogs_are_compiled_and_complete_without_gettext():
    """Every patient-facing string has a Spanish translation and the committed .mo matches its .po, checked with
    polib only (no msgfmt), as CI and deployments do."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    try:
        import compile_messages
    finally:
        sys.path.pop(0)
    assert compile_messages.extract()  # the sources really are marked
    assert compile_messages.problems() == []
