"""Forged voice webhooks are refused and write nothing; call statuses only move forward."""

import pytest
from django.conf import settings
from twilio.request_validator import RequestValidator

from channels_app import twilio_payloads
from conversations.models import ChannelMessage, Conversation, Interaction, SessionState
from conversations.signals import interaction_closed
from identity.models import Customer
from tests.voice.phone import CALLER, CLINIC

RE_SID = "RE" + "a" * 32


def snapshot():
    return (
        Interaction.objects.count(),
        ChannelMessage.objects.count(),
        Customer.objects.count(),
        Conversation.objects.count(),
        [(i.pk, i.transcript, i.metadata, i.ended_at) for i in Interaction.objects.all()],
        list(ChannelMessage.objects.values_list("status", flat=True)),
    )


def forged_requests(tenant, sid):
    account = tenant.twilio_account_sid
    return [
        ("/twilio/voice/", twilio_payloads.inbound_call(account_sid=account, from_=CALLER, to=CLINIC)),
        (
            "/twilio/voice/gather/?turn=1",
            twilio_payloads.gather_speech(
                account_sid=account, call_sid=sid, from_=CALLER, to=CLINIC, speech="chest pain"
            ),
        ),
        (
            "/twilio/voice/no-input/?turn=1&n=1",
            twilio_payloads.gather_speech(account_sid=account, call_sid=sid, from_=CALLER, to=CLINIC, speech=""),
        ),
        (
            "/twilio/voice/status/",
            twilio_payloads.call_status(
                account_sid=account, call_sid=sid, from_=CALLER, to=CLINIC, status="completed", duration=5
            ),
        ),
        ("/twilio/voice/voicemail/", twilio_payloads.inbound_call(account_sid=account, from_=CALLER, to=CLINIC)),
        (
            "/twilio/voice/voicemail/done/",
            twilio_payloads.record_action(
                account_sid=account, call_sid=sid, from_=CALLER, to=CLINIC, recording_sid=RE_SID, duration=5
            ),
        ),
        (
            "/twilio/voice/recording/",
            twilio_payloads.recording_status(account_sid=account, call_sid=sid, recording_sid=RE_SID),
        ),
        (
            "/twilio/voice/transcription/",
            twilio_payloads.transcription(
                account_sid=account, call_sid=sid, from_=CALLER, to=CLINIC, recording_sid=RE_SID, text="chest pain"
            ),
        ),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("forgery", ["missing", "garbage", "wrong-token", "tampered"])
def test_forged_voice_webhooks_are_403_and_write_nothing(phone, tenant, twilio_post, client, forgery):
    phone.answer()  # a real call exists, so only the signature stands between a forger and it
    before = snapshot()
    for path, params in forged_requests(tenant, phone.sid):
        if forgery == "missing":
            response = twilio_post(path, params, signature="")
        elif forgery == "garbage":
            response = twilio_post(path, params, signature="bm90IGEgc2lnbmF0dXJl")
        elif forgery == "wrong-token":
            response = twilio_post(path, params, token="not-the-tenant-token")
        else:
            signature = RequestValidator(tenant.twilio_auth_token).compute_signature(
                settings.PUBLIC_BASE_URL + path, params
            )
            tampered = {**params, "CallStatus": "canceled", "SpeechResult": "forged words"}
            response = client.post(path, tampered, HTTP_X_TWILIO_SIGNATURE=signature)
        assert response.status_code == 403, (path, response.status_code)
    assert snapshot() == before


@pytest.mark.django_db
def test_signature_over_another_turn_url_is_403(phone, tenant, client):
    phone.answer()
    params = twilio_payloads.gather_speech(
        account_sid=tenant.twilio_account_sid, call_sid=phone.sid, from_=CALLER, to=CLINIC, speech="hello"
    )
    signature = RequestValidator(tenant.twilio_auth_token).compute_signature(
        settings.PUBLIC_BASE_URL + "/twilio/voice/gather/?turn=1", params
    )
    assert client.post("/twilio/voice/gather/?turn=7", params, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403


@pytest.mark.django_db
def test_recording_callback_for_an_unknown_call_is_403(tenant, twilio_post):
    params = twilio_payloads.recording_status(
        account_sid=tenant.twilio_account_sid, call_sid="CA" + "0" * 32, recording_sid=RE_SID
    )
    assert twilio_post("/twilio/voice/recording/", params, tenant=tenant).status_code == 403


@pytest.mark.django_db
def test_out_of_order_status_callbacks_never_move_a_call_backwards(phone, django_capture_on_commit_callbacks):
    closed = []
    interaction_closed.connect(
        lambda sender, **kw: closed.append(kw["interaction_id"]), weak=False, dispatch_uid="tests.voice.closed"
    )
    try:
        phone.answer()
        phone.say("I'd like to book an appointment")
        with django_capture_on_commit_callbacks(execute=True):
            for status, duration in [
                ("in-progress", None),
                ("completed", 42),
                ("ringing", None),
                ("in-progress", None),
                ("busy", None),
                ("completed", 99),
            ]:
                assert phone.status(status, duration).status_code == 204
    finally:
        interaction_closed.disconnect(dispatch_uid="tests.voice.closed")
    call = ChannelMessage.objects.get(provider_id=phone.sid)
    row = call.interaction
    assert call.status == "completed"
    assert row.metadata["call_status"] == "completed" and row.metadata["duration_seconds"] == 42
    assert row.metadata["messages"][phone.sid]["status"] == "completed"
    assert row.ended_at is not None
    assert closed == [row.pk]  # closed once → enrichment queued once


@pytest.mark.django_db
def test_status_moves_forward_through_each_stage(phone):
    phone.answer()
    seen = []
    for status in ["ringing", "in-progress", "completed"]:
        phone.status(status)
        seen.append(ChannelMessage.objects.get(provider_id=phone.sid).status)
    assert seen == ["ringing", "in-progress", "completed"]


@pytest.mark.django_db
def test_a_call_dropped_mid_booking_keeps_the_pending_state(phone):
    phone.answer()
    phone.say("I'd like to book an appointment")
    phone.say("Tuesday please")
    phone.status("completed", 31)  # the caller's line dropped
    row = Interaction.objects.get()
    state = dict(SessionState.objects.filter(conversation=row.conversation).values_list("key", "value"))
    assert state["pending"]["intent"] == "book" and state["pending"]["date"]
    assert state["interrupted_call"]["call_sid"] == phone.sid


@pytest.mark.django_db
def test_status_callback_for_another_tenants_call_changes_nothing(phone, other_tenant, twilio_post):
    phone.answer()
    params = twilio_payloads.call_status(
        account_sid=other_tenant.twilio_account_sid,
        call_sid=phone.sid,
        from_=CALLER,
        to="+15550100002",
        status="completed",
        duration=3,
    )
    assert twilio_post("/twilio/voice/status/", params, tenant=other_tenant).status_code == 204
    assert ChannelMessage.objects.get(provider_id=phone.sid).status == "ringing"
    assert Interaction.objects.get().ended_at is None
