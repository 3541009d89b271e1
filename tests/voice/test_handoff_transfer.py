"""A caller who asks for a person is transferred to the front desk (``<Dial>``) while the clinic is open.

Opening hours are made deterministic: "open" puts the tenant in the fixed-offset zone where it is about noon right
now, with every day open 00:00–23:59 (eleven hours of margin either side, whatever the wall clock says); "closed"
gives the tenant no opening window on any day.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from channels_app import twilio_payloads
from channels_app.voice.transfer import NOT_ANSWERED_PROMPT, TRANSFER_LINE
from conversations.models import AgentSettings, Interaction, SessionState, StaffNotification
from tests.voice.handoff import (
    ASK_FOR_A_PERSON,
    DIAL_CALL_SID,
    FRONT_DESK,
    dial_result_params,
    post_dial_result,
)
from tests.voice.phone import CALLER, CLINIC, Phone, says


def transfer_to_front_desk(phone: Phone) -> str:
    phone.answer()
    phone.say("Hi, this is Ana.")
    return phone.say(ASK_FOR_A_PERSON)


@pytest.mark.django_db
def test_asking_for_a_person_while_open_dials_the_front_desk_from_the_clinic_number(phone, open_now):
    document = transfer_to_front_desk(phone)
    dial = phone.last.find("Dial")
    assert dial is not None and phone.last.find("Gather") is None
    assert dial.text == FRONT_DESK
    assert dial.get("callerId") == CLINIC  # the clinic's Twilio number the call came in on
    assert dial.get("timeout") == "20"
    assert dial.get("action") == settings.PUBLIC_BASE_URL + "/twilio/voice/dial-result/"
    assert says(document) == [TRANSFER_LINE]
    assert "Ana" not in document  # nothing about the caller is spoken
    row = Interaction.objects.get()
    last = row.transcript[-1]
    assert (last["role"], last["event"], last["text"], last["turn"]) == ("agent", "transfer", TRANSFER_LINE, 2)
    assert "handoff_to_human" in last["actions"]
    assert row.workflow["transfer"]["status"] == "dialing"
    assert (row.workflow["transfer"]["number"], row.workflow["transfer"]["caller_id"]) == (FRONT_DESK, CLINIC)
    # the handoff itself is unchanged: escalated row, one notification for staff
    assert row.escalated
    assert StaffNotification.objects.filter(interaction=row, kind=StaffNotification.Kind.HANDOFF).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("dial_status", ["completed", "answered"])
def test_answered_transfer_hangs_up_and_is_recorded_once(phone, tenant, open_now, dial_status):
    transfer_to_front_desk(phone)
    document = post_dial_result(phone, tenant, dial_status, duration=95)
    assert phone.last.find("Hangup") is not None and phone.last.find("Record") is None
    assert phone.last.find("Dial") is None and phone.last.find("Gather") is None
    row = Interaction.objects.get()
    transfer = row.workflow["transfer"]
    assert (
        transfer["status"],
        transfer["dial_call_status"],
        transfer["dial_call_sid"],
        transfer["dial_call_duration"],
    ) == ("transferred", dial_status, DIAL_CALL_SID, 95)
    assert (row.transcript[-1]["role"], row.transcript[-1]["event"]) == ("system", "transferred")
    turns = len(row.transcript)

    # Twilio retries the same dial-result request: same TwiML, nothing written twice
    again = phone.post("/twilio/voice/dial-result/", dial_result_params(tenant, phone, dial_status, 95), tenant=tenant)
    assert again.status_code == 200 and again.content.decode() == document
    row.refresh_from_db()
    assert len(row.transcript) == turns and row.workflow["transfer"] == transfer

    # the call ends: closed normally, not remembered as a call that dropped mid-way
    assert phone.status("completed", 140).status_code == 204
    row.refresh_from_db()
    assert row.ended_at is not None
    assert not SessionState.objects.filter(conversation=row.conversation, key="interrupted_call").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("dial_status", ["busy", "no-answer", "failed", "canceled"])
def test_unanswered_transfer_offers_voicemail_once(phone, tenant, open_now, dial_status):
    transfer_to_front_desk(phone)
    document = post_dial_result(phone, tenant, dial_status)
    record = phone.last.find("Record")
    assert record is not None and phone.last.find("Dial") is None
    assert record.get("action") == settings.PUBLIC_BASE_URL + "/twilio/voice/voicemail/done/"
    assert record.get("recordingStatusCallback") == settings.PUBLIC_BASE_URL + "/twilio/voice/recording/"
    assert says(document)[0] == NOT_ANSWERED_PROMPT
    row = Interaction.objects.get()
    assert row.workflow["transfer"]["status"] == "not_answered"
    assert row.workflow["transfer"]["dial_call_status"] == dial_status
    assert [(t["role"], t["event"]) for t in row.transcript[-2:]] == [
        ("system", "transfer_not_answered"),
        ("agent", "voicemail"),
    ]
    turns = len(row.transcript)

    again = phone.post("/twilio/voice/dial-result/", dial_result_params(tenant, phone, dial_status), tenant=tenant)
    assert again.status_code == 200 and again.content.decode() == document
    row.refresh_from_db()
    assert len(row.transcript) == turns

    # the caller leaves a message: the usual voicemail path takes over
    done = phone.post(
        "/twilio/voice/voicemail/done/",
        twilio_payloads.record_action(
            account_sid=tenant.twilio_account_sid,
            call_sid=phone.sid,
            from_=CALLER,
            to=CLINIC,
            recording_sid="RE" + "c" * 32,
            duration=9,
        ),
        tenant=tenant,
    )
    assert done.status_code == 200 and "Goodbye" in says(done.content.decode())[-1]


@pytest.mark.django_db
def test_caller_hanging_up_while_the_desk_rings_is_recorded_without_a_voicemail_prompt(phone, tenant, open_now):
    transfer_to_front_desk(phone)
    params = dial_result_params(tenant, phone, "no-answer")
    params["CallStatus"] = "completed"  # the parent call is over: Twilio ignores the TwiML we answer
    assert phone.post("/twilio/voice/dial-result/", params, tenant=tenant).status_code == 200
    row = Interaction.objects.get()
    assert row.workflow["transfer"]["status"] == "not_answered"
    assert [(t["role"], t["event"]) for t in row.transcript[-2:]] == [
        ("agent", "transfer"),
        ("system", "transfer_not_answered"),
    ]


@pytest.mark.django_db
def test_replayed_gather_action_of_the_transfer_turn_dials_the_same_number_without_a_second_turn(
    phone, tenant, open_now
):
    document = transfer_to_front_desk(phone)
    row = Interaction.objects.get()
    turns = len(row.transcript)
    params = twilio_payloads.gather_speech(
        account_sid=tenant.twilio_account_sid, call_sid=phone.sid, from_=CALLER, to=CLINIC, speech=ASK_FOR_A_PERSON
    )
    replay = phone.post("/twilio/voice/gather/?turn=2", params, tenant=tenant)
    assert replay.status_code == 200 and replay.content.decode() == document
    row.refresh_from_db()
    assert len(row.transcript) == turns
    assert StaffNotification.objects.filter(interaction=row).count() == 1


@pytest.mark.django_db
def test_outside_opening_hours_the_agent_promises_a_follow_up_instead(phone, closed_always):
    document = transfer_to_front_desk(phone)
    assert phone.last.find("Dial") is None and phone.last.find("Gather") is not None
    assert "in touch" in says(document)[0]
    row = Interaction.objects.get()
    assert "transfer" not in row.metadata
    assert (row.transcript[-1]["event"], row.transcript[-1]["actions"]) == ("reply", ["handoff_to_human"])
    assert StaffNotification.objects.filter(interaction=row, kind=StaffNotification.Kind.HANDOFF).exists()


@pytest.mark.django_db
def test_without_a_front_desk_number_the_agent_promises_a_follow_up_instead(phone, tenant, open_now):
    AgentSettings.objects.filter(tenant=tenant).update(handoff_number="")
    document = transfer_to_front_desk(phone)
    assert phone.last.find("Dial") is None and phone.last.find("Gather") is not None
    assert "in touch" in says(document)[0]
    assert "transfer" not in Interaction.objects.get().metadata


@pytest.mark.django_db
def test_forged_dial_result_is_403_and_writes_nothing(phone, tenant, open_now):
    transfer_to_front_desk(phone)
    before = Interaction.objects.get()
    forged = phone.post(
        "/twilio/voice/dial-result/",
        dial_result_params(tenant, phone, "completed"),
        tenant=tenant,
        signature="bm90IGEgc2lnbmF0dXJl",
    )
    assert forged.status_code == 403
    after = Interaction.objects.get()
    assert after.transcript == before.transcript and after.workflow["transfer"]["status"] == "dialing"


@pytest.mark.django_db
def test_dial_result_for_an_unknown_call_writes_nothing(phone, tenant, open_now):
    transfer_to_front_desk(phone)
    stranger = Phone(phone.post, tenant)  # a CallSid we never saw
    response = stranger.post(
        "/twilio/voice/dial-result/", dial_result_params(tenant, stranger, "completed"), tenant=tenant
    )
    assert response.status_code == 200 and b"<Hangup" in response.content
    assert Interaction.objects.get().workflow["transfer"]["status"] == "dialing"


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["4155550100", "+1 415 555 0100", "(415) 555-0100", "+15550100001", "front desk"])
def test_handoff_number_must_be_a_valid_e164_number(tenant, value):
    agent_settings = AgentSettings(tenant=tenant, handoff_number=value)
    with pytest.raises(ValidationError) as raised:
        agent_settings.full_clean()
    assert "handoff_number" in raised.value.message_dict


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["", FRONT_DESK, "+442071838750"])
def test_handoff_number_accepts_e164_or_blank(tenant, value):
    AgentSettings(tenant=tenant, handoff_number=value).full_clean()
