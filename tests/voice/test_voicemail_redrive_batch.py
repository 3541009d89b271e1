"""The voicemail redrive reaches an unfiled recording however many filed ones came before it in the hour.

Filed recordings are excluded in SQL before the batch limit: with more filed recordings than a batch holds
(``REDRIVE_BATCH`` lowered here instead of leaving 500 voicemails), the newest, unfiled one is still re-queued.
Calls are driven through Twilio's signed webhooks (incoming call, recording status, transcription callbacks).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from channels_app import twilio_payloads
from channels_app.voice import tasks as voice_tasks
from channels_app.voice import voicemail
from conversations.models import ChannelMessage, Interaction
from tests.broker import take_queued
from tests.voice.phone import CLINIC, Phone

BATCH = 2
FILED = BATCH + 1  # more filed recordings than one batch holds


def record(phone: Phone, recording_sid: str) -> None:
    """A call that reached voicemail: answered, and its completed recording noted by the recording callback."""
    phone.answer()
    account = phone.tenant.twilio_account_sid
    response = phone.post(
        "/twilio/voice/recording/",
        twilio_payloads.recording_status(account_sid=account, call_sid=phone.sid, recording_sid=recording_sid),
        tenant=phone.tenant,
    )
    assert response.status_code == 204


def file_with_transcription(phone: Phone, recording_sid: str) -> None:
    """Twilio's transcription callback arrives: the recording is filed as a voicemail."""
    response = phone.post(
        "/twilio/voice/transcription/",
        twilio_payloads.transcription(
            account_sid=phone.tenant.twilio_account_sid,
            call_sid=phone.sid,
            from_=phone.caller,
            to=CLINIC,
            recording_sid=recording_sid,
            text="Please call me back about my bill.",
        ),
        tenant=phone.tenant,
    )
    assert response.status_code == 204


@pytest.mark.django_db
def test_filed_recordings_never_crowd_an_unfiled_one_out_of_the_batch(
    twilio_post, tenant, open_all_day, monkeypatch, empty_queue
):
    monkeypatch.setattr(voicemail, "REDRIVE_BATCH", BATCH)
    for n in range(FILED):  # older calls, all filed (their rows are the first by updated_at)
        phone = Phone(twilio_post, tenant, caller=f"+1555123010{n}")
        sid = twilio_payloads.new_sid("RE")
        record(phone, sid)
        file_with_transcription(phone, sid)
    assert ChannelMessage.objects.filter(channel="voicemail").count() == FILED

    lost = Phone(twilio_post, tenant, caller="+15551230199")  # the newest call: its transcription never came
    lost_sid = twilio_payloads.new_sid("RE")
    record(lost, lost_sid)
    call = Interaction.objects.get(channel="voice", metadata__call_sid=lost.sid)
    received = datetime.fromisoformat(call.metadata["recording"]["received_at"])

    due = received + voicemail.TWILIO_TRANSCRIPTION_GRACE + timedelta(seconds=1)
    assert voicemail.voicemail_redrive(now=due) == 1
    [(name, args)] = take_queued()
    assert name == voice_tasks.voicemail_file_untranscribed_task.name
    assert args[:2] == [ChannelMessage.objects.get(channel="voice", provider_id=lost.sid).pk, lost_sid]
