"""Leaving a voicemail the way Twilio reports it: Record action, recording status and transcription callbacks."""

from datetime import datetime

from channels_app import twilio_payloads
from conversations.models import Interaction
from tests.voice.phone import CALLER, CLINIC, Phone, says

RE_SID = "RE" + "b" * 32


def leave_message(phone: Phone, tenant, *, duration=14):
    """The caller asks for voicemail, records, hangs up; Twilio posts the Record action and recording status."""
    phone.answer()
    document = phone.say("Can I leave a message please")
    record = phone.last.find("Record")
    assert record is not None and "message" in says(document)[0]
    account = tenant.twilio_account_sid
    done = phone.post(
        "/twilio/voice/voicemail/done/",
        twilio_payloads.record_action(
            account_sid=account, call_sid=phone.sid, from_=CALLER, to=CLINIC, recording_sid=RE_SID, duration=duration
        ),
        tenant=tenant,
    )
    assert done.status_code == 200 and "Goodbye" in says(done.content.decode())[-1]
    status = phone.post(
        "/twilio/voice/recording/",
        twilio_payloads.recording_status(
            account_sid=account, call_sid=phone.sid, recording_sid=RE_SID, duration=duration
        ),
        tenant=tenant,
    )
    assert status.status_code == 204
    return record


def transcription(phone, tenant, text, status="completed"):
    return phone.post(
        "/twilio/voice/transcription/",
        twilio_payloads.transcription(
            account_sid=tenant.twilio_account_sid,
            call_sid=phone.sid,
            from_=CALLER,
            to=CLINIC,
            recording_sid=RE_SID,
            text=text,
            status=status,
        ),
        tenant=tenant,
    )


def received_at(phone) -> datetime:
    """When the recording callback noted the recording on the call's row (UTC)."""
    call = Interaction.objects.get(channel="voice", metadata__call_sid=phone.sid)
    return datetime.fromisoformat(call.metadata["recording"]["received_at"])
