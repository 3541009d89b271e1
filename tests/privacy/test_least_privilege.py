"""Least privilege: the "Clinic scheduling" role manages appointments and never reads what patients said; a patient
who opts out of memory is not remembered across channels (no linking, the agent sees only the current session)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from conversations import services
from conversations.agent.backends.openai_backend import history_messages, system_prompt
from conversations.agent.session import continuity_greeting, session_for
from conversations.models import Appointment
from identity.models import CustomerIdentifier
from identity.services import customer_resolve
from identity.staff import staff_member_create

pytestmark = pytest.mark.django_db
User = get_user_model()


def member(tenant, username: str, role: str):
    user = User(username=username)
    user.set_password("Sycamore-Ferry-204")
    staff_member_create(tenant=tenant, user=user, role=role)
    return user


@pytest.fixture
def appointment(patient_row):
    start = timezone.now().replace(microsecond=0) + timedelta(days=3)
    return Appointment.objects.create(
        tenant=patient_row.tenant,
        customer=patient_row.customer,
        conversation=patient_row.conversation,
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        booked_via="sms",
    )


@pytest.fixture
def scheduler(tenant, client):
    client.force_login(member(tenant, "marisol.agenda", "scheduling"))
    return client


def test_scheduling_role_manages_appointments(scheduler, appointment):
    listing = scheduler.get("/admin/conversations/appointment/")
    assert listing.status_code == 200 and listing.context["cl"].result_count == 1
    assert scheduler.get(f"/admin/conversations/appointment/{appointment.pk}/change/").status_code == 200
    response = scheduler.post(
        "/admin/conversations/appointment/",
        {"action": "cancel_appointments", "_selected_action": [str(appointment.pk)]},
    )
    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED
    api = scheduler.get("/api/v1/appointments/")
    assert api.status_code == 200 and api.json()["results"][0]["id"] == str(appointment.pk)


def test_scheduling_role_cannot_read_transcripts_anywhere(scheduler, patient_row, appointment):
    conversation = patient_row.conversation_id
    for url in [
        "/admin/conversations/interaction/",
        f"/admin/conversations/interaction/{patient_row.pk}/change/",
        "/admin/conversations/conversation/",
        f"/admin/conversations/conversation/{conversation}/change/",
        "/admin/conversations/inboxconversation/",
        f"/admin/conversations/inboxconversation/{conversation}/change/",
        "/admin/channels_app/inboundemail/",
        "/admin/escalation/incident/",
    ]:
        assert scheduler.get(url).status_code == 403, url
    for url in [
        "/api/v1/interactions/",
        f"/api/v1/customers/{patient_row.customer_id}/timeline/",
        f"/api/v1/conversations/{conversation}/messages/",
        f"/api/v1/customers/{patient_row.customer_id}/export/",
    ]:
        assert scheduler.get(url).status_code == 403, url
    # the patient's card: name and number to call them, but no timeline, no Customer 360, no transcript
    page = scheduler.get(f"/admin/identity/customer/{patient_row.customer_id}/change/")
    body = page.content.decode()
    assert page.status_code == 200 and "+14155550123" in body and "Zelda Quux" in body
    assert "my knee hurts" not in body and "Timeline" not in body and "Customer 360" not in body
    assert "Inbox" not in scheduler.get("/admin/").content.decode()


def test_front_desk_still_reads_the_timeline(tenant, client, patient_row):
    client.force_login(member(tenant, "front.desk", "staff"))
    body = client.get(f"/admin/identity/customer/{patient_row.customer_id}/change/").content.decode()
    assert "my knee hurts" in body and "Timeline" in body


def test_clinic_admin_can_give_the_scheduling_role(tenant, client):
    client.force_login(member(tenant, "boss", "admin"))
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": "nuevo.agenda",
            "password1": "Quetzal-Harbour-9087",
            "password2": "Quetzal-Harbour-9087",
            "role": "scheduling",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(username="nuevo.agenda")
    assert user.membership.role == "scheduling"
    assert set(user.groups.values_list("name", flat=True)) == {"Clinic scheduling"}
    assert user.has_perm("conversations.change_appointment") and not user.has_perm("conversations.view_interaction")


# --- memory opt-out --------------------------------------------------------------------------------------


def test_opted_out_patient_gets_no_new_identifiers_linked(tenant):
    patient = customer_resolve(tenant=tenant, phone="+14155550177").customer
    patient.memory_opt_out = True
    patient.save(update_fields=["memory_opt_out"])
    again = customer_resolve(tenant=tenant, phone="(415) 555-0177", email="Rosa.Nuñez@Example.org", cookie="v-9f2c")
    assert again.customer == patient and again.attached == []
    assert list(CustomerIdentifier.objects.filter(customer=patient).values_list("kind", flat=True)) == ["phone"]
    # the browser is not remembered: next time it is a stranger
    assert customer_resolve(tenant=tenant, cookie="v-9f2c").customer != patient


def test_not_opted_out_patient_is_linked_as_before(tenant):
    patient = customer_resolve(tenant=tenant, phone="+14155550178").customer
    customer_resolve(tenant=tenant, phone="+14155550178", cookie="v-77aa")
    assert customer_resolve(tenant=tenant, cookie="v-77aa").customer == patient


def _sms_then_chat(tenant, *, opted_out: bool):
    """Rosa texted yesterday (name and a pending booking remembered), and opens the chat today."""
    patient = customer_resolve(tenant=tenant, phone="+14155550179").customer
    patient.memory_opt_out = opted_out
    patient.save(update_fields=["memory_opt_out"])
    yesterday = timezone.now() - timedelta(days=1)
    sms, _ = services.session_open(tenant=tenant, customer=patient, channel="sms", at=yesterday)
    services.interaction_append_turn(
        interaction=sms, role="customer", text="hola, soy Rosa, mi rodilla 🦵", at=yesterday
    )
    services.state_set(conversation=sms.conversation, key="name", value="Rosa", at=yesterday)
    services.state_set(
        conversation=sms.conversation, key="pending", value={"intent": "book", "date": None, "time": None}, at=yesterday
    )
    chat, _ = services.session_open(tenant=tenant, customer=patient, channel="chat")
    services.interaction_append_turn(interaction=chat, role="customer", text="I’d like to see someone this week")
    return chat


def test_opted_out_patient_is_not_remembered_across_channels(tenant):
    chat = _sms_then_chat(tenant, opted_out=True)
    session = session_for(interaction=chat)
    assert session.state == {}
    greeting = continuity_greeting(session)
    assert "Welcome back" not in greeting and "Rosa" not in greeting
    history = " ".join(m["content"] for m in history_messages(session, "what about Thursday?"))
    assert "rodilla" not in history and "see someone this week" in history
    assert "Rosa" not in system_prompt(session)
    # what this session itself learns is remembered within it
    services.state_set(conversation=chat.conversation, key="name", value="Rosa N.")
    assert session_for(interaction=chat).state == {"name": "Rosa N."}


def test_patient_who_did_not_opt_out_is_welcomed_back(tenant):
    chat = _sms_then_chat(tenant, opted_out=False)
    session = session_for(interaction=chat)
    assert session.state["name"] == "Rosa"
    assert continuity_greeting(session).startswith("Welcome back, Rosa")
    assert "rodilla" in " ".join(m["content"] for m in history_messages(session, "what about Thursday?"))
