"""The form bodies Twilio posts to our webhooks, parameter for parameter.

Sources: "Messaging webhook request" (https://www.twilio.com/docs/messaging/guides/webhook-request) and
"Message status callback" (https://www.twilio.com/docs/messaging/guides/outbound-message-logging). Used by
``simulate`` and by the tests, so both send what Twilio sends.
"""

from __future__ import annotations

import uuid

import phonenumbers

API_VERSION = "2010-04-01"


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two-letter prefix + 32 hex digits (``SM…`` message, ``CA…`` call)."""
    return prefix + uuid.uuid4().hex


def _country(e164: str) -> str:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164)) or ""
    except phonenumbers.NumberParseException:
        return ""


def inbound_sms(
    *,
    account_sid: str,
    from_: str,
    to: str,
    body: str,
    message_sid: str | None = None,
    media_urls: list[str] | None = None,
) -> dict[str, str]:
    """Parameters of Twilio's incoming-message webhook (``POST /twilio/sms/``)."""
    sid = message_sid or new_sid("SM")
    params = {
        "ToCountry": _country(to),
        "ToState": "",
        "SmsMessageSid": sid,
        "NumMedia": str(len(media_urls or [])),
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": _country(from_),
        "To": to,
        "ToZip": "",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": API_VERSION,
    }
    for i, url in enumerate(media_urls or []):
        params[f"MediaUrl{i}"] = url
        params[f"MediaContentType{i}"] = "image/jpeg"
    return params


def sms_status(
    *, account_sid: str, message_sid: str, status: str, from_: str, to: str, error_code: str = ""
) -> dict[str, str]:
    """Parameters of a message status callback (``POST /twilio/sms/status/``)."""
    params = {
        "MessageSid": message_sid,
        "MessageStatus": status,
        "SmsSid": message_sid,
        "SmsStatus": status,
        "AccountSid": account_sid,
        "From": from_,
        "To": to,
        "ApiVersion": API_VERSION,
    }
    if error_code:
        params["ErrorCode"] = error_code
    return params


# --- voice ---------------------------------------------------------------------------------------------------
# Sources: "Voice webhooks" (https://www.twilio.com/docs/usage/webhooks/voice-webhooks) and "TwiML request
# parameters" (https://www.twilio.com/docs/voice/twiml#request-parameters) for the parameters of every voice
# request; "<Gather> action" (https://www.twilio.com/docs/voice/twiml/gather#action) for SpeechResult/Confidence;
# "Call StatusCallback" (https://www.twilio.com/docs/voice/api/call-resource#statuscallback); "<Record>"
# (https://www.twilio.com/docs/voice/twiml/record) for the action, recordingStatusCallback and
# transcribeCallback parameters.


def _call_params(
    *, account_sid: str, call_sid: str, from_: str, to: str, status: str, direction: str = "inbound"
) -> dict[str, str]:
    """The parameters Twilio sends with every request about a call (geographic fields left empty)."""
    return {
        "Called": to,
        "ToState": "",
        "CallerCountry": _country(from_),
        "Direction": direction,
        "CallerState": "",
        "ToZip": "",
        "CallSid": call_sid,
        "To": to,
        "CallerZip": "",
        "ToCountry": _country(to),
        "CalledZip": "",
        "ApiVersion": API_VERSION,
        "CalledCity": "",
        "CallStatus": status,
        "From": from_,
        "AccountSid": account_sid,
        "CalledCountry": _country(to),
        "CallerCity": "",
        "ToCity": "",
        "FromCountry": _country(from_),
        "Caller": from_,
        "FromCity": "",
        "CalledState": "",
        "FromZip": "",
        "FromState": "",
    }


def inbound_call(*, account_sid: str, from_: str, to: str, call_sid: str | None = None) -> dict[str, str]:
    """Parameters of Twilio's incoming-call webhook (``POST /twilio/voice/``), status ``ringing``."""
    params = _call_params(
        account_sid=account_sid, call_sid=call_sid or new_sid("CA"), from_=from_, to=to, status="ringing"
    )
    params["CallToken"] = ""
    return params


def callback_answer(*, account_sid: str, call_sid: str, from_: str, to: str, answered_by: str) -> dict[str, str]:
    """Parameters of the ``Url`` request of a call we placed with ``MachineDetection``: status ``in-progress``,
    direction ``outbound-api``, plus ``AnsweredBy`` (human, machine_start, machine_end_beep, machine_end_silence,
    machine_end_other, fax, unknown; https://www.twilio.com/docs/voice/answering-machine-detection)."""
    params = _call_params(
        account_sid=account_sid, call_sid=call_sid, from_=from_, to=to, status="in-progress", direction="outbound-api"
    )
    params["AnsweredBy"] = answered_by
    return params


def gather_speech(
    *,
    account_sid: str,
    call_sid: str,
    from_: str,
    to: str,
    speech: str,
    confidence: str = "0.92",
    direction: str = "inbound",
) -> dict[str, str]:
    """Parameters of a ``<Gather input="speech">`` action request; ``speech=""`` is a Gather that heard nothing
    (sent only with ``actionOnEmptyResult``)."""
    params = _call_params(
        account_sid=account_sid, call_sid=call_sid, from_=from_, to=to, status="in-progress", direction=direction
    )
    if speech:
        params.update({"SpeechResult": speech, "Confidence": confidence})
    return params


def call_status(
    *,
    account_sid: str,
    call_sid: str,
    from_: str,
    to: str,
    status: str,
    duration: int | None = None,
    sequence: int = 0,
    direction: str = "inbound",
    timestamp: str | None = None,
) -> dict[str, str]:
    """Parameters of a call status callback (``POST /twilio/voice/status/``); ``duration`` (seconds) is sent on
    the final callback as ``CallDuration`` (and ``Duration``, billed minutes)."""
    from email.utils import format_datetime

    from django.utils import timezone

    params = _call_params(
        account_sid=account_sid, call_sid=call_sid, from_=from_, to=to, status=status, direction=direction
    )
    params.update(
        {
            "Timestamp": timestamp or format_datetime(timezone.now(), usegmt=True),
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(sequence),
        }
    )
    if duration is not None:
        params.update({"CallDuration": str(duration), "Duration": str(max(1, -(-duration // 60)))})
    return params


def recording_url(*, account_sid: str, recording_sid: str) -> str:
    """The ``RecordingUrl`` Twilio sends (no extension; append ``.mp3`` or ``.wav`` to fetch the media)."""
    return f"https://api.twilio.com/{API_VERSION}/Accounts/{account_sid}/Recordings/{recording_sid}"


def record_action(
    *, account_sid: str, call_sid: str, from_: str, to: str, recording_sid: str, duration: int, digits: str = "hangup"
) -> dict[str, str]:
    """Parameters of a ``<Record>`` action request (the recording just finished)."""
    params = _call_params(account_sid=account_sid, call_sid=call_sid, from_=from_, to=to, status="in-progress")
    params.update(
        {
            "RecordingUrl": recording_url(account_sid=account_sid, recording_sid=recording_sid),
            "RecordingSid": recording_sid,
            "RecordingDuration": str(duration),
            "Digits": digits,
        }
    )
    return params


def recording_status(
    *,
    account_sid: str,
    call_sid: str,
    recording_sid: str,
    status: str = "completed",
    duration: int = 12,
    error_code: str = "",
) -> dict[str, str]:
    """Parameters of a ``recordingStatusCallback`` (``POST /twilio/voice/recording/``) — note: no To/From."""
    from email.utils import format_datetime

    from django.utils import timezone

    params = {
        "AccountSid": account_sid,
        "CallSid": call_sid,
        "RecordingSid": recording_sid,
        "RecordingUrl": recording_url(account_sid=account_sid, recording_sid=recording_sid),
        "RecordingStatus": status,
        "RecordingDuration": str(duration if status == "completed" else 0),
        "RecordingChannels": "1",
        "RecordingStartTime": format_datetime(timezone.now(), usegmt=True),
        "RecordingSource": "RecordVerb",
        "RecordingTrack": "both",
    }
    if error_code:
        params["ErrorCode"] = error_code
    return params


def transcription(
    *, account_sid: str, call_sid: str, from_: str, to: str, recording_sid: str, text: str, status: str = "completed"
) -> dict[str, str]:
    """Parameters of a ``transcribeCallback`` (``POST /twilio/voice/transcription/``)."""
    params = _call_params(account_sid=account_sid, call_sid=call_sid, from_=from_, to=to, status="completed")
    transcription_sid = new_sid("TR")
    params.update(
        {
            "TranscriptionSid": transcription_sid,
            "TranscriptionText": text if status == "completed" else "",
            "TranscriptionStatus": status,
            "RecordingSid": recording_sid,
            "TranscriptionUrl": f"https://api.twilio.com/{API_VERSION}/Accounts/{account_sid}/Transcriptions/{transcription_sid}",
            "RecordingUrl": recording_url(account_sid=account_sid, recording_sid=recording_sid),
        }
    )
    return params
