"""Voicemail: <Record> with callbacks, Twilio's transcription or the OpenAI-compatible STT, triage, escalation."""

import logging
from datetime import timedelta

import pytest
from django.test import override_settings

from channels_app import twilio_payloads
from channels_app.voice import tasks as voice_tasks
from channels_app.voice.voicemail import (
    REDRIVE_AFTER,
    TWILIO_TRANSCRIPTION_GRACE,
    voicemail_file_untranscribed,
    voicemail_redrive,
    voicemail_transcribe,
)
from conversations.models import ChannelMessage, Interaction
from conversations.signals import escalation_requested
from tests.broker import broker_down, take_queued
from tests.voice.phone import CALLER, CLINIC
from tests.voice.voicemail_calls import RE_SID, leave_message, received_at, transcription

URGENT = "Hi, this is Ana. My father collapsed and has chest pain, please call me back as soon as you can."


@pytest.mark.django_db
def test_urgent_voicemail_is_filed_with_transcript_urgency_intent_and_escalated(
    phone, tenant, escalations, django_capture_on_commit_callbacks
):
    record = leave_message(phone, tenant)
    assert record.get("transcribe") == "true"
    with django_capture_on_commit_callbacks(execute=True):
        assert transcription(phone, tenant, URGENT).status_code == 204
    call = Interaction.objects.get(channel="voice")
    voicemail = Interaction.objects.get(channel="voicemail")
    assert [(t["role"], t["text"]) for t in voicemail.transcript] == [("customer", URGENT)]
    assert voicemail.urgency == 5 and voicemail.intent == "emergency" and voicemail.escalated
    assert voicemail.ended_at is not None  # filed and closed, so enrichment scores it
    assert voicemail.conversation_id == call.conversation_id and voicemail.customer_id == call.customer_id
    assert voicemail.metadata["recording_sid"] == RE_SID and voicemail.metadata["call_sid"] == phone.sid
    assert voicemail.metadata["recording_url"].endswith(RE_SID) and voicemail.metadata["duration_seconds"] == 14
    assert voicemail.metadata["transcription"] == {"source": "twilio", "status": "completed"}
    assert call.metadata["voicemail_interaction_id"] == str(voicemail.pk)
    assert call.metadata["recording"]["status"] == "completed"
    assert escalations == [
        {
            "signal": escalation_requested,
            "interaction_id": voicemail.pk,
            "urgency": 5,
            "reason": "red flag: chest_pain_cardiac, unresponsive",
        }
    ]


@pytest.mark.django_db
def test_duplicate_transcription_callback_files_one_voicemail(phone, tenant):
    leave_message(phone, tenant)
    transcription(phone, tenant, "Please call me about my bill")
    transcription(phone, tenant, "Please call me about my bill")
    voicemail = Interaction.objects.get(channel="voicemail")
    assert voicemail.intent == "billing" and voicemail.urgency == 1 and not voicemail.escalated
    assert ChannelMessage.objects.filter(channel="voicemail").count() == 1


@pytest.mark.django_db
def test_failed_transcription_still_files_the_voicemail_for_staff(phone, tenant):
    leave_message(phone, tenant)
    transcription(phone, tenant, "", status="failed")
    voicemail = Interaction.objects.get(channel="voicemail")
    assert voicemail.transcript[0]["text"] == "" and voicemail.metadata["transcription"]["status"] == "failed"
    assert voicemail.metadata["recording_url"] and not voicemail.escalated


@pytest.mark.django_db
def test_absent_recording_files_nothing(phone, tenant):
    phone.answer()
    params = twilio_payloads.recording_status(
        account_sid=tenant.twilio_account_sid,
        call_sid=phone.sid,
        recording_sid=RE_SID,
        status="absent",
        error_code="16102",
    )
    assert phone.post("/twilio/voice/recording/", params, tenant=tenant).status_code == 204
    assert not Interaction.objects.filter(channel="voicemail").exists()
    assert Interaction.objects.get().metadata["recording"]["status"] == "absent"


@pytest.mark.django_db
def test_number_fallback_goes_straight_to_voicemail(twilio_post, tenant, open_all_day):
    params = twilio_payloads.inbound_call(account_sid=tenant.twilio_account_sid, from_=CALLER, to=CLINIC)
    response = twilio_post("/twilio/voice/voicemail/", params, tenant=tenant)
    assert response.status_code == 200 and b"<Record" in response.content
    row = Interaction.objects.get()
    assert row.channel == "voice" and row.metadata["call_sid"] == params["CallSid"]


def stt_settings(stub):
    # the voice LLM timeout (4 s, a caller is waiting) is no limit to test here: a loaded machine must not flip it
    return override_settings(
        VOICEMAIL_TRANSCRIBER="openai",
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=stub.base_url + "/v1",
        TWILIO_API_BASE=stub.base_url,
        VOICE_LLM_TIMEOUT_SECONDS=30,
    )


@pytest.mark.django_db
def test_openai_transcription_fetches_the_recording_with_the_tenants_credentials(
    phone, tenant, voice_stub, django_capture_on_commit_callbacks
):
    voice_stub.add_recording(
        account_sid=tenant.twilio_account_sid,
        auth_token=tenant.twilio_auth_token,
        recording_sid=RE_SID,
        audio=b"ID3-fake-mp3-audio",
        text=URGENT,
    )
    with stt_settings(voice_stub):
        with django_capture_on_commit_callbacks() as queued:
            record = leave_message(phone, tenant)
        # the LLM (same stub) judges the message an emergency; the rules agree ("chest pain")
        voice_stub.scores = {"sentiment": -0.8, "intent": "emergency", "lead_score": 0, "satisfaction": 2, "urgency": 5}
        assert record.get("transcribe") is None  # Twilio is not asked to transcribe
        assert len(queued) >= 1  # the transcription task, queued on commit
        call = ChannelMessage.objects.get(provider_id=phone.sid)
        recording_url = twilio_payloads.recording_url(account_sid=tenant.twilio_account_sid, recording_sid=RE_SID)
        voicemail = voicemail_transcribe(
            call_message_id=call.pk, recording_sid=RE_SID, recording_url=recording_url, duration_seconds=14
        )
        voicemail_transcribe(call_message_id=call.pk, recording_sid=RE_SID, recording_url=recording_url)  # redelivered
    assert Interaction.objects.filter(channel="voicemail").count() == 1
    assert voicemail.transcript[0]["text"] == URGENT and voicemail.escalated and voicemail.urgency == 5
    assert voicemail.metadata["transcription"] == {"source": "openai", "status": "completed"}
    assert voicemail.metadata["assessment"]["source"] == "rules+llm" and voicemail.intent == "emergency"
    fetch = next(r for r in voice_stub.requests if r["method"] == "GET")
    assert fetch["path"] == f"/2010-04-01/Accounts/{tenant.twilio_account_sid}/Recordings/{RE_SID}.mp3"
    stt = next(r for r in voice_stub.requests if r["path"] == "/v1/audio/transcriptions")
    assert stt["auth"] == "Bearer sk-test" and b"whisper-1" in stt["body"] and b"ID3-fake-mp3-audio" in stt["body"]


@pytest.mark.django_db
def test_recording_url_of_another_account_is_never_fetched(phone, tenant, voice_stub):
    phone.answer()
    call = ChannelMessage.objects.get(provider_id=phone.sid)
    foreign = twilio_payloads.recording_url(account_sid="AC" + "9" * 32, recording_sid=RE_SID)
    with stt_settings(voice_stub):
        voicemail = voicemail_transcribe(call_message_id=call.pk, recording_sid=RE_SID, recording_url=foreign)
        evil = voicemail_transcribe(
            call_message_id=call.pk, recording_sid="RE" + "c" * 32, recording_url="https://attacker.example/" + RE_SID
        )
    assert not any(r["method"] == "GET" for r in voice_stub.requests)
    assert voicemail.metadata["transcription"]["status"] == "failed" and evil.transcript[0]["text"] == ""


# --- lost work: the broker down, a task lost, a transcription that never came ---------------------------------


def test_voicemail_tasks_are_requeued_when_their_worker_dies():
    for task in (voice_tasks.voicemail_transcribe, voice_tasks.voicemail_file_untranscribed_task):
        assert task.acks_late and task.reject_on_worker_lost, task.name


def test_the_redrive_outlasts_a_normal_transcription_but_not_an_urgent_patients_patience():
    """A first attempt running to its hard time limit and its first backoff is never doubled; a lost task's
    voicemail is re-queued within five minutes (an urgent one escalates then)."""
    from callsphere.celery import app

    task = voice_tasks.voicemail_transcribe
    limit = task.time_limit or app.conf.task_time_limit
    assert limit and task.retry_backoff
    first_attempt_and_retry = limit + min(task.retry_backoff_max, max(1, int(task.retry_backoff)))
    assert first_attempt_and_retry < REDRIVE_AFTER.total_seconds() <= 5 * 60


@pytest.mark.django_db
def test_recording_callback_with_the_broker_down_answers_and_the_redrive_transcribes_it_later(
    phone, tenant, voice_stub, escalations, empty_queue, django_capture_on_commit_callbacks, caplog
):
    voice_stub.add_recording(
        account_sid=tenant.twilio_account_sid,
        auth_token=tenant.twilio_auth_token,
        recording_sid=RE_SID,
        audio=b"ID3-fake-mp3-audio",
        text=URGENT,
    )
    with stt_settings(voice_stub):
        with broker_down(), caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
            leave_message(phone, tenant)  # the recording callback still answers 204
        assert "Error calling" in caplog.text  # queuing the transcription failed, and was only logged
        assert take_queued() == []
        at = received_at(phone)

        # its first task may still be retrying (it was lost here, but the redrive cannot tell)
        assert voicemail_redrive(now=at + REDRIVE_AFTER - timedelta(seconds=1)) == 0
        redriven = at + REDRIVE_AFTER
        assert voicemail_redrive(now=redriven) == 1
        [(name, args)] = take_queued()
        call = ChannelMessage.objects.get(provider_id=phone.sid)
        url = twilio_payloads.recording_url(account_sid=tenant.twilio_account_sid, recording_sid=RE_SID)
        assert (name, args) == (voice_tasks.voicemail_transcribe.name, [call.pk, RE_SID, url, 14])
        # just re-queued: that task has its whole retry chain
        assert voicemail_redrive(now=redriven + REDRIVE_AFTER - timedelta(seconds=1)) == 0

        with django_capture_on_commit_callbacks(execute=True):  # what the queued task does
            voicemail = voicemail_transcribe(
                call_message_id=args[0], recording_sid=args[1], recording_url=args[2], duration_seconds=args[3]
            )
        assert voicemail_redrive(now=redriven + REDRIVE_AFTER) == 0  # filed
    assert voicemail.transcript[0]["text"] == URGENT and voicemail.escalated and voicemail.urgency == 5
    assert [e["interaction_id"] for e in escalations] == [voicemail.pk]


@pytest.mark.django_db
def test_a_recording_older_than_an_hour_is_left_to_staff(phone, tenant, empty_queue):
    leave_message(phone, tenant)
    assert voicemail_redrive(now=received_at(phone) + timedelta(hours=2)) == 0
    assert take_queued() == [] and not Interaction.objects.filter(channel="voicemail").exists()


@pytest.mark.django_db
def test_twilio_transcription_that_never_came_files_the_recording_and_a_late_one_still_escalates(
    phone, tenant, escalations, empty_queue, django_capture_on_commit_callbacks
):
    leave_message(phone, tenant)  # Twilio transcribes; its callback never arrives (our webhook failed, say)
    at = received_at(phone)
    assert voicemail_redrive(now=at + timedelta(minutes=5)) == 0  # Twilio may still be transcribing
    assert voicemail_redrive(now=at + TWILIO_TRANSCRIPTION_GRACE + timedelta(seconds=1)) == 1
    [(name, args)] = take_queued()
    assert name == voice_tasks.voicemail_file_untranscribed_task.name
    voicemail = voicemail_file_untranscribed(
        call_message_id=args[0], recording_sid=args[1], recording_url=args[2], duration_seconds=args[3]
    )
    assert voicemail.transcript[0]["text"] == "" and voicemail.metadata["recording_url"].endswith(RE_SID)
    assert voicemail.metadata["transcription"] == {"source": "twilio", "status": "missing"}
    assert not voicemail.escalated and escalations == []
    assert voicemail_redrive(now=at + timedelta(minutes=30)) == 0  # filed

    with django_capture_on_commit_callbacks(execute=True):
        assert transcription(phone, tenant, URGENT).status_code == 204  # Twilio's, late
    transcription(phone, tenant, URGENT)  # and its duplicate
    voicemail.refresh_from_db()
    assert [(t["role"], t["text"]) for t in voicemail.transcript] == [("customer", ""), ("customer", URGENT)]
    assert voicemail.metadata["transcription"] == {"source": "twilio", "status": "completed"}
    assert voicemail.escalated and voicemail.urgency == 5 and voicemail.intent == "emergency"
    assert [e["interaction_id"] for e in escalations] == [voicemail.pk]
    assert ChannelMessage.objects.filter(channel="voicemail").count() == 1
