"""Callbacks: a request_callback from any channel becomes one outbound call whose first words carry context."""

import time
import xml.etree.ElementTree as ET

import pytest
from django.conf import settings
from django.test import override_settings

from channels_app import twilio_payloads
from channels_app.voice.callback import callback_place
from conversations.agent.services import callback_request
from conversations.models import CallbackRequest, ChannelMessage, Interaction
from conversations.services import session_open
from identity.services import customer_resolve
from providers import ProviderTransientError
from providers.voice import LocmemVoiceBackend
from tests import processes
from tests.stubs.twilio_api import TwilioStub
from tests.voice.callbacks import PATIENT, TWILIO, answer, chat_request
from tests.voice.phone import CLINIC, path_of, says


@pytest.mark.django_db
def test_callback_is_placed_once_with_context_and_no_phi_beyond_what_was_given(tenant, twilio_post):
    request = chat_request(tenant)
    first = callback_place(callback_request_id=request.pk)
    again = callback_place(callback_request_id=request.pk)  # the task redelivered
    assert first.pk == again.pk and len(LocmemVoiceBackend.calls) == 1
    placed = LocmemVoiceBackend.calls[0]
    assert (placed["to"], placed["from"]) == (PATIENT, CLINIC)
    assert placed["twiml"] is None and placed["machine_detection"] == "DetectMessageEnd"
    assert placed["url"].endswith(f"/twilio/voice/callback/{request.pk}/answer/")
    response = answer(twilio_post, tenant, first)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    document = response.content.decode()
    spoken = says(document)[0]
    assert spoken == (
        f"Hello, this is {tenant.short_name} calling you back about booking an appointment, "
        "as you asked in our chat. How can I help?"
    )
    assert "rash" not in document  # the patient's own words are never read out to whoever picks up
    assert "Ana" not in document  # nor their name: it may be someone else or a voicemail box
    gather = ET.fromstring(document).find("Gather")
    assert gather.get("input") == "speech" and gather.get("action").endswith("/twilio/voice/gather/?turn=1")
    call = ChannelMessage.objects.get(idempotency_key=f"callback:{request.pk}")
    assert (call.provider_id, call.status, call.direction) == (placed["sid"], "queued", "outbound")
    row = call.interaction
    assert (row.channel, row.direction, row.conversation_id) == ("voice", "outbound", request.conversation_id)
    assert [t["text"] for t in row.transcript] == [spoken] and row.metadata["answered_by"] == "human"
    request.refresh_from_db()
    assert request.status == "in_progress"


@pytest.mark.django_db
def test_unanswered_callback_is_marked_failed_for_staff(tenant, twilio_post):
    request = chat_request(tenant)
    call = callback_place(callback_request_id=request.pk)
    params = twilio_payloads.call_status(
        account_sid=tenant.twilio_account_sid,
        call_sid=call.provider_id,
        from_=CLINIC,
        to=PATIENT,
        status="no-answer",
        direction="outbound-api",
    )
    assert twilio_post("/twilio/voice/status/", params, tenant=tenant).status_code == 204
    request.refresh_from_db()
    assert request.status == "failed" and call.interaction.__class__.objects.get(pk=call.interaction_id).ended_at


@pytest.mark.django_db
def test_an_unverified_number_is_never_dialled(tenant):
    """Only a proven phone is called: not one merely typed in chat (toll fraud, calling strangers)."""
    customer = customer_resolve(tenant=tenant, phone=PATIENT, cookie="c-1").customer  # typed, never proven
    chat, _ = session_open(tenant=tenant, customer=customer, channel="chat")
    typed, _ = callback_request(interaction=chat, phone=PATIENT, reason="call me")
    assert callback_place(callback_request_id=typed.pk) is None and LocmemVoiceBackend.calls == []
    typed.refresh_from_db()
    assert typed.status == "failed" and not ChannelMessage.objects.filter(channel="voice").exists()

    # a request naming an unproven number calls the customer's verified one instead
    verified = "+15551230010"
    customer_resolve(tenant=tenant, phone=verified, cookie="c-1", verified_kinds=("phone",))
    other, _ = callback_request(interaction=chat, phone=PATIENT, reason="call me")
    callback_place(callback_request_id=other.pk)
    assert [c["to"] for c in LocmemVoiceBackend.calls] == [verified]


@pytest.mark.django_db
def test_uncertain_placement_is_reconciled_not_dialled_twice(tenant):
    request = chat_request(tenant)
    with TwilioStub() as stub, override_settings(VOICE_BACKEND=TWILIO, TWILIO_API_BASE=stub.base_url):
        stub.add_fault("calls", status=500, create=True)  # Twilio placed the call, then answered 500
        with pytest.raises(ProviderTransientError):
            callback_place(callback_request_id=request.pk)
        call = callback_place(callback_request_id=request.pk)  # the task's retry
        assert len(stub.created("calls")) == 1 and len(stub.creates("calls")) == 1
        assert call.provider_id == stub.created("calls")[0]["sid"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_callback_requested_in_chat_is_dialled_by_the_worker_and_answered_by_the_voice_agent(
    tenant, twilio_post, tmp_path
):
    """The whole path: the agent's request_callback → callback_requested on commit → our receiver → the
    voice_place_callback task in a real worker → the real twilio client → a local stub of Twilio's API; then
    Twilio's webhooks for the answered call run the normal turn loop and close the request."""
    with TwilioStub() as stub:
        worker = processes.start_worker(
            log_path=tmp_path / "worker.log", VOICE_BACKEND=TWILIO, TWILIO_API_BASE=stub.base_url
        )
        try:
            request = chat_request(tenant)
            deadline = time.monotonic() + 30
            while not stub.created("calls") and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            processes.stop(worker)
        created = stub.created("calls")
        assert len(created) == 1, (tmp_path / "worker.log").read_text()
        sent = stub.creates("calls")[0].params  # the Calls.json form as the real twilio client sent it
    placed = created[0]
    assert placed["to"] == PATIENT and placed["from"] == CLINIC
    assert placed["status_callback"].endswith("/twilio/voice/status/")
    assert sent["Url"] == f"{settings.PUBLIC_BASE_URL}/twilio/voice/callback/{request.pk}/answer/"
    assert sent["MachineDetection"] == "DetectMessageEnd" and "Twiml" not in sent

    account, sid = tenant.twilio_account_sid, placed["sid"]
    for status in ["ringing", "in-progress"]:
        twilio_post(
            "/twilio/voice/status/",
            twilio_payloads.call_status(
                account_sid=account, call_sid=sid, from_=CLINIC, to=PATIENT, status=status, direction="outbound-api"
            ),
            tenant=tenant,
        )
    greeting = twilio_post(
        path_of(sent["Url"]),
        twilio_payloads.callback_answer(
            account_sid=account, call_sid=sid, from_=CLINIC, to=PATIENT, answered_by="human"
        ),
        tenant=tenant,
    )
    assert "calling you back about booking an appointment" in says(greeting.content.decode())[0]
    answer = twilio_post(
        "/twilio/voice/gather/?turn=1",
        twilio_payloads.gather_speech(
            account_sid=account,
            call_sid=sid,
            from_=CLINIC,
            to=PATIENT,
            speech="Yes, Tuesday at 10am please",
            direction="outbound-api",
        ),
        tenant=tenant,
    )
    assert answer.status_code == 200 and b"<Gather" in answer.content
    twilio_post(
        "/twilio/voice/status/",
        twilio_payloads.call_status(
            account_sid=account,
            call_sid=sid,
            from_=CLINIC,
            to=PATIENT,
            status="completed",
            duration=61,
            direction="outbound-api",
        ),
        tenant=tenant,
    )
    request = CallbackRequest.objects.get(pk=request.pk)
    assert request.status == "done"
    row = Interaction.objects.get(channel="voice")
    assert row.direction == "outbound" and row.ended_at and row.metadata["duration_seconds"] == 61
    assert [t["role"] for t in row.transcript] == ["agent", "customer", "agent"]
