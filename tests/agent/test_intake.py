"""Intake (issue 15, item 2): name, date of birth and reason for visit, one question at a time, started on one
channel and finished on another; stored on the customer (date of birth a date, encrypted at rest); the
"always confirm date of birth" identity policy before bookings are revealed or changed."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import connection

from conversations.agent.engine import greet, turn
from conversations.agent.intake import parse_birth_date
from conversations.appointments import appointment_book
from conversations.models import AgentSettings, Appointment
from identity.models import Customer
from tests.clock import local, next_weekday

pytestmark = pytest.mark.django_db


def test_intake_started_by_sms_is_finished_in_chat(tenant, customer, open_session):
    sms = open_session("sms")
    ask = turn(interaction=sms, text="hi, I'm a new patient - can I fill out the paperwork by text?")
    assert "full name" in ask.text
    assert "date of birth" in turn(interaction=sms, text="sarah o'connor").text
    chat = open_session("chat")
    hello = greet(interaction=chat)
    assert hello.text.startswith("Hi Sarah, you started your intake earlier — finish it now?")
    assert "date of birth" in hello.text
    assert "reason for your visit" in turn(interaction=chat, text="March 14th, 1985").text
    done = turn(interaction=chat, text="my knee’s been hurting since I fell skiing")
    assert "intake is complete" in done.text
    row = Customer.objects.get(pk=customer.pk)
    assert row.display_name == "Sarah O'connor"
    assert row.date_of_birth == date(1985, 3, 14)
    assert "skiing" in row.visit_reason
    with connection.cursor() as cursor:  # encrypted at rest: the stored column is not the date or the words
        cursor.execute("SELECT date_of_birth, visit_reason FROM identity_customer WHERE id = %s", [customer.pk])
        raw_dob, raw_reason = cursor.fetchone()
    assert "1985" not in raw_dob and "skiing" not in raw_reason
    assert "intake" not in greet(interaction=open_session("email")).text  # nothing pending any more


def test_an_impossible_date_is_asked_again(tenant, customer, open_session):
    sms = open_session("sms")
    turn(interaction=sms, text="can I do my intake?")
    assert "date of birth" in turn(interaction=sms, text="My name is Maria López").text
    assert Customer.objects.get(pk=customer.pk).display_name == "Maria López"
    again = turn(interaction=sms, text="13/45/2090")
    assert "couldn't read that date" in again.text
    assert Customer.objects.get(pk=customer.pk).date_of_birth is None


def test_a_question_during_intake_goes_to_the_agent(tenant, customer, open_session):
    sms = open_session("sms")
    turn(interaction=sms, text="registration please")
    reply = turn(interaction=sms, text="when is my appointment?")
    assert "upcoming appointment" in reply.text
    assert Customer.objects.get(pk=customer.pk).display_name == ""


def test_spanish_intake(tenant, customer, open_session):
    sms = open_session("sms")
    assert "nombre completo" in turn(interaction=sms, text="Hola, soy paciente nuevo, quiero hacer el registro").text
    assert "fecha de nacimiento" in turn(interaction=sms, text="me llamo José García").text
    turn(interaction=sms, text="14 de marzo de 1985")
    assert Customer.objects.get(pk=customer.pk).date_of_birth == date(1985, 3, 14)


@pytest.mark.parametrize(
    "text, born",
    [
        ("03/14/1985", date(1985, 3, 14)),
        ("my dob is March 14, 1985", date(1985, 3, 14)),
        ("born on 7/4/1976", date(1976, 7, 4)),
        ("14 de marzo de 1985", date(1985, 3, 14)),
        ("tomorrow", None),
        ("March 2090", None),
        ("1850-01-01", None),
    ],
)
def test_birth_dates(text, born):
    assert parse_birth_date(text, today=date(2026, 12, 5)) == born


@pytest.fixture
def dob_policy(tenant, customer):
    AgentSettings.objects.create(tenant=tenant, identity_check=AgentSettings.IdentityCheck.DOB)
    Customer.objects.filter(pk=customer.pk).update(display_name="Sarah Lee")
    customer.refresh_from_db()
    from identity.services import customer_set_intake

    customer_set_intake(customer=customer, date_of_birth=date(1985, 3, 14))
    return appointment_book(tenant=tenant, customer=customer, starts_at=local(tenant, next_weekday(tenant, 1), 14))


def test_dob_policy_asks_before_revealing_a_booking(tenant, customer, open_session, dob_policy):
    chat = open_session("chat")
    ask = turn(interaction=chat, text="when is my appointment?")
    assert "confirm your date of birth" in ask.text and "Tuesday" not in ask.text
    reply = turn(interaction=chat, text="3/14/85")
    assert "Your appointment is on Tuesday" in reply.text


def test_dob_policy_wrong_date_reveals_and_changes_nothing(tenant, customer, open_session, dob_policy):
    sms = open_session("sms")
    turn(interaction=sms, text="cancel my appointment please")
    reply = turn(interaction=sms, text="01/01/1990")
    assert "won't use details" in reply.text
    assert "Tuesday" not in turn(interaction=sms, text="when is my appointment?").text
    turn(interaction=sms, text="cancel it")
    assert Appointment.objects.get().status == "booked"


def test_admin_shows_and_edits_the_date_of_birth(tenant, customer, admin_client):
    page = admin_client.get(f"/admin/identity/customer/{customer.pk}/change/")
    assert page.status_code == 200 and b'name="date_of_birth"' in page.content
