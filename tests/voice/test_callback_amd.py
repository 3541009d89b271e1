"""Callbacks with answering-machine detection: Twilio fetches our signed answer Url with ``AnsweredBy``; a person
gets the callback's turn loop, a machine or fax a generic message with no patient detail and a hang-up."""

import xml.etree.ElementTree as ET

import pytest
from django.test import override_settings

from channels_app import twilio_payloads
from channels_app.voice.callback import callback_place
from conversations.models import CallbackRequest, Interaction
from providers.voice import LocmemVoiceBackend, TwilioVoiceBackend
from tests.stubs.twilio_api import TwilioStub
from tests.voice.callbacks import PATIENT, TWILIO, chat_request
from tests.voice.phone import CLINIC, path_of, says


def placed_call(tenant):
    request = chat_request(tenant)
    call = callback_place(callback_request_id=request.pk)
    return request, call, path_of(LocmemVoiceBackend.calls[-1]["url"])


def answer_params(tenant, call, answered_by):
    return twilio_payloads.callback_answer(
        account_sid=tenant.twilio_account_sid,
        call_sid=call.provider_id,
        from_=CLINIC,
        to=PATIENT,
        answered_by=answered_by,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "answered_by", ["machine_end_beep", "machine_end_silence", "machine_end_other", "machine_start", "fax"]
)
def test_machine_gets_a_generic_message_and_the_request_is_marked_for_staff(tenant, twilio_post, answered_by):
    request, call, path = placed_call(tenant)
    response = twilio_post(path, answer_params(tenant, call, answered_by), tenant=tenant)
    assert response.status_code == 200
    document = ET.fromstring(response.content)
    assert [child.tag for child in document] == ["Say", "Hangup"]  # no Gather: nobody to talk with
    spoken = says(response.content.decode())[0]
    assert spoken == (
        f"Hello, this is {tenant.short_name} returning your call. "
        "Please call us back at 5 5 5, 0 1 0, 0 0 0 1. Thank you, goodbye."
    )
    for detail in ("Ana", "rash", "appointment", "booking", "chat"):
        assert detail not in spoken  # nothing about the patient or the request on a box anyone may play back
    request.refresh_from_db()
    assert request.status == CallbackRequest.Status.FAILED
    row = Interaction.objects.get(pk=call.interaction_id)
    assert row.metadata["answered_by"] == answered_by and row.metadata["callback_outcome"] == "left_message"
    assert [(t["event"], t["text"]) for t in row.transcript] == [("callback_machine_message", spoken)]
    # the call then completes: the request stays failed (not "done": the patient was not reached)
    completed = twilio_payloads.call_status(
        account_sid=tenant.twilio_account_sid,
        call_sid=call.provider_id,
        from_=CLINIC,
        to=PATIENT,
        status="completed",
        duration=14,
        direction="outbound-api",
    )
    assert twilio_post("/twilio/voice/status/", completed, tenant=tenant).status_code == 204
    request.refresh_from_db()
    assert request.status == CallbackRequest.Status.FAILED


@pytest.mark.django_db
def test_unknown_is_treated_as_a_person(tenant, twilio_post):
    request, call, path = placed_call(tenant)
    response = twilio_post(path, answer_params(tenant, call, "unknown"), tenant=tenant)
    assert ET.fromstring(response.content).find("Gather") is not None
    assert "calling you back" in says(response.content.decode())[0]
    request.refresh_from_db()
    assert request.status == CallbackRequest.Status.IN_PROGRESS


@pytest.mark.django_db
def test_replayed_answer_request_answers_the_same_branch_once(tenant, twilio_post):
    request, call, path = placed_call(tenant)
    first = twilio_post(path, answer_params(tenant, call, "machine_end_beep"), tenant=tenant)
    again = twilio_post(path, answer_params(tenant, call, "human"), tenant=tenant)  # a retry must not flip it
    assert first.content == again.content
    assert len(Interaction.objects.get(pk=call.interaction_id).transcript) == 1


@pytest.mark.django_db
def test_forged_answer_request_is_403_and_changes_nothing(tenant, twilio_post):
    request, call, path = placed_call(tenant)
    response = twilio_post(path, answer_params(tenant, call, "machine_end_beep"), token="not-the-tenant-token")
    assert response.status_code == 403
    request.refresh_from_db()
    row = Interaction.objects.get(pk=call.interaction_id)
    assert request.status == CallbackRequest.Status.IN_PROGRESS and row.transcript == []
    assert "answered_by" not in row.metadata


@pytest.mark.django_db
def test_another_tenants_callback_id_is_404(tenant, other_tenant, twilio_post):
    request, call, path = placed_call(tenant)
    params = twilio_payloads.callback_answer(
        account_sid=other_tenant.twilio_account_sid,
        call_sid=call.provider_id,
        from_="+15550100002",
        to=PATIENT,
        answered_by="human",
    )
    assert twilio_post(path, params, tenant=other_tenant).status_code == 404
    assert Interaction.objects.get(pk=call.interaction_id).transcript == []


@pytest.mark.django_db
def test_answer_for_a_call_we_did_not_place_for_this_request_hangs_up_silently(tenant, twilio_post):
    request, call, path = placed_call(tenant)
    params = answer_params(tenant, call, "human")
    params["CallSid"] = twilio_payloads.new_sid("CA")
    response = twilio_post(path, params, tenant=tenant)
    assert [child.tag for child in ET.fromstring(response.content)] == ["Hangup"]


@pytest.mark.django_db
def test_twilio_backend_sends_url_and_machine_detection_or_twiml(tenant):
    with TwilioStub() as stub, override_settings(VOICE_BACKEND=TWILIO, TWILIO_API_BASE=stub.base_url):
        backend = TwilioVoiceBackend()
        backend.place_call(
            tenant=tenant,
            from_=CLINIC,
            to=PATIENT,
            url="https://example.test/answer/",
            machine_detection="DetectMessageEnd",
        )
        backend.place_call(tenant=tenant, from_=CLINIC, to=PATIENT, twiml="<Response/>")  # unchanged callers
        amd, inline = (r.params for r in stub.creates("calls"))
    assert (amd["Url"], amd["MachineDetection"]) == ("https://example.test/answer/", "DetectMessageEnd")
    assert "Twiml" not in amd
    assert inline["Twiml"] == "<Response/>" and "Url" not in inline and "MachineDetection" not in inline
    for bad in (
        {},
        {"twiml": "<Response/>", "url": "https://example.test/"},
        {"twiml": "<Response/>", "machine_detection": "Enable"},
    ):
        with pytest.raises(ValueError):
            LocmemVoiceBackend().place_call(tenant=tenant, from_=CLINIC, to=PATIENT, **bad)
