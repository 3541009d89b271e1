"""The VoicemailAnalyzer: transcribe a caller's message, assess it, file it in the caller's conversation.

Transcription: Twilio's own (``<Record transcribe="true">``; the text arrives at the transcription callback —
https://www.twilio.com/docs/voice/twiml/record#transcribe) by default; with ``VOICEMAIL_TRANSCRIBER=openai``
and ``OPENAI_API_KEY`` set, the recording is fetched from Twilio with the tenant's credentials (HTTP basic auth,
https://www.twilio.com/docs/voice/api/recording#fetch-a-recording-media-file) and sent to the OpenAI-compatible
speech-to-text endpoint (``POST {OPENAI_BASE_URL}/audio/transcriptions``,
https://platform.openai.com/docs/api-reference/audio/createTranscription) — both with explicit timeouts.

Each recording becomes one ``voicemail`` row in ``call_logs`` (once per RecordingSid: the DB guard is its
ChannelMessage), with the transcript as the customer's turn, urgency and intent from
:mod:`channels_app.voice.assess`, and ``escalated`` plus ``escalation_requested`` when it is an emergency. The row
is closed at once (so enrichment scores it) and linked from the call's row.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import httpx
from django.conf import settings
from django.db import transaction

from channels_app.providers import ProviderPermanentError, ProviderTransientError
from channels_app.providers.twilio_client import TWILIO_HOST
from channels_app.voice.agent import Call, _escalate, call_find
from channels_app.voice.assess import assess
from conversations.models import Channel, Interaction
from conversations.services import (
    interaction_close,
    interaction_set_assessment,
    interaction_set_metadata,
    message_receive,
)
from identity.models import Tenant

logger = logging.getLogger(__name__)


def stt_configured() -> bool:
    """True when voicemails are transcribed by the OpenAI-compatible endpoint instead of Twilio."""
    return settings.VOICEMAIL_TRANSCRIBER == "openai" and bool(settings.OPENAI_API_KEY)


def voicemail_file(
    *, tenant: Tenant, call: Call, recording_sid: str, recording_url: str, transcript: str, source: str,
    transcription_status: str = "completed", duration_seconds: int | None = None,
) -> Interaction:
    """Write (once per ``recording_sid``) the ``voicemail`` row of ``call``'s caller and return it.

    ``transcript`` may be empty (transcription failed: staff still get the recording link). ``source`` is
    ``"twilio"`` or ``"openai"``.
    """
    assessment = assess(tenant=tenant, text=transcript, channel=Channel.VOICEMAIL)
    with transaction.atomic():
        received = message_receive(
            tenant=tenant, customer=call.interaction.customer, channel=Channel.VOICEMAIL, provider_id=recording_sid,
            sender=call.message.sender, recipient=call.message.recipient, text=transcript,
            turn_extra={"recording_sid": recording_sid},
        )
        voicemail = received.interaction
        if received.duplicate:
            logger.info("voicemail %s already filed", recording_sid)
            return voicemail
        interaction_set_metadata(interaction=voicemail, updates={
            "call_sid": call.sid, "recording_sid": recording_sid, "recording_url": recording_url,
            "duration_seconds": duration_seconds,
            "transcription": {"source": source, "status": transcription_status},
            "assessment": {"source": assessment.source, "reason": assessment.reason},
        })
        interaction_set_assessment(interaction=voicemail, urgency=assessment.urgency,
                                   intent=assessment.intent if transcript else None)
        if assessment.is_emergency:
            _escalate(voicemail, assessment)
        interaction_close(interaction=voicemail)
        interaction_set_metadata(interaction=call.interaction, updates={"voicemail_interaction_id": str(voicemail.pk)})
    return voicemail


def recording_received(*, tenant: Tenant, params: Mapping[str, str]) -> None:
    """Handle the recording status callback: note the recording on the call and, when the OpenAI-compatible
    transcriber is configured, queue its transcription. ``absent`` (silent / too short) files nothing."""
    call = call_find(tenant=tenant, call_sid=params.get("CallSid", ""))
    if call is None:
        return
    recording = {
        "sid": params.get("RecordingSid", ""), "url": params.get("RecordingUrl", ""),
        "status": params.get("RecordingStatus", ""), "duration_seconds": _int(params.get("RecordingDuration")),
    }
    with transaction.atomic():
        interaction_set_metadata(interaction=call.interaction, updates={"recording": recording})
        if recording["status"] != "completed" or not recording["sid"]:
            logger.info("recording %s of call %s: %s", recording["sid"], call.sid, recording["status"])
            return
        if stt_configured():
            from channels_app.voice.tasks import voicemail_transcribe

            message_id = call.message.pk
            transaction.on_commit(lambda: voicemail_transcribe.delay(
                message_id, recording["sid"], recording["url"], recording["duration_seconds"]))


def transcription_received(*, tenant: Tenant, params: Mapping[str, str]) -> Interaction | None:
    """Handle Twilio's transcription callback: file the voicemail with ``TranscriptionText`` (empty when
    ``TranscriptionStatus`` is ``failed``)."""
    call = call_find(tenant=tenant, call_sid=params.get("CallSid", ""))
    if call is None or not params.get("RecordingSid"):
        return None
    status = params.get("TranscriptionStatus", "")
    recording = (call.interaction.metadata or {}).get("recording") or {}
    return voicemail_file(
        tenant=tenant, call=call, recording_sid=params["RecordingSid"], recording_url=params.get("RecordingUrl", ""),
        transcript=(params.get("TranscriptionText") or "").strip() if status == "completed" else "",
        source="twilio", transcription_status=status or "completed",
        duration_seconds=recording.get("duration_seconds") if recording.get("sid") == params["RecordingSid"] else None,
    )


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _media_url(tenant: Tenant, recording_url: str) -> str:
    """The recording's MP3 URL on Twilio's API (rebased on ``TWILIO_API_BASE``). Refuses any URL that is not
    a recording of the tenant's own account, so the tenant's credentials are never sent elsewhere."""
    prefix = f"{TWILIO_HOST}/2010-04-01/Accounts/{tenant.twilio_account_sid}/Recordings/"
    if not tenant.twilio_account_sid or not recording_url.startswith(prefix):
        raise ProviderPermanentError(f"not a recording of this tenant's account: {recording_url[:120]}")
    url = settings.TWILIO_API_BASE + recording_url[len(TWILIO_HOST):]
    return url if url.endswith((".mp3", ".wav")) else url + ".mp3"


def recording_fetch(*, tenant: Tenant, recording_url: str) -> bytes:
    """Download a recording with the tenant's Twilio credentials. Raises ProviderTransientError (timeouts,
    connection errors, 429/5xx — Twilio may answer 404 for a moment while the file is stored, retried too)
    or ProviderPermanentError (other 4xx, foreign URL)."""
    url = _media_url(tenant, recording_url)
    timeout = httpx.Timeout(settings.VOICEMAIL_FETCH_TIMEOUT_SECONDS, connect=5.0)
    try:
        response = httpx.get(url, auth=(tenant.twilio_account_sid, tenant.twilio_auth_token), timeout=timeout,
                             follow_redirects=True)
    except httpx.TransportError as exc:
        raise ProviderTransientError(f"recording fetch failed: {type(exc).__name__}") from exc
    if response.status_code in (404, 429) or response.status_code >= 500:
        raise ProviderTransientError(f"recording fetch: HTTP {response.status_code}", status=response.status_code)
    if response.status_code >= 400:
        raise ProviderPermanentError(f"recording fetch: HTTP {response.status_code}", status=response.status_code)
    return response.content


def speech_to_text(*, audio: bytes, filename: str = "voicemail.mp3") -> str:
    """Transcribe ``audio`` with the OpenAI-compatible endpoint (``VOICEMAIL_STT_MODEL``). Raises
    ProviderTransientError (connection, timeout, 429, 5xx) or ProviderPermanentError (other API errors)."""
    import openai

    client = openai.OpenAI(api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL,
                           timeout=settings.OPENAI_TIMEOUT_SECONDS, max_retries=0)
    try:
        result = client.audio.transcriptions.create(model=settings.VOICEMAIL_STT_MODEL,
                                                    file=(filename, audio, "audio/mpeg"))
    except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
        raise ProviderTransientError(f"speech-to-text failed: {type(exc).__name__}") from exc
    except openai.APIStatusError as exc:
        raise ProviderPermanentError(f"speech-to-text failed: HTTP {exc.status_code}", status=exc.status_code) from exc
    return (getattr(result, "text", "") or "").strip()


def voicemail_transcribe(*, call_message_id: int, recording_sid: str, recording_url: str,
                         duration_seconds: int | None = None, give_up: bool = False) -> Interaction | None:
    """Fetch, transcribe (OpenAI-compatible) and file one voicemail. Transient errors propagate (the task
    retries) unless ``give_up``; then, like permanent errors, the voicemail is filed without a transcript."""
    from conversations.models import ChannelMessage

    message = ChannelMessage.objects.select_related("interaction__customer", "tenant").get(pk=call_message_id)
    call = Call(message=message, interaction=message.interaction)
    tenant = message.tenant
    try:
        transcript = speech_to_text(audio=recording_fetch(tenant=tenant, recording_url=recording_url))
        status = "completed"
    except ProviderTransientError:
        if not give_up:
            raise
        logger.warning("voicemail %s: transcription kept failing; filing it without a transcript", recording_sid)
        transcript, status = "", "failed"
    except ProviderPermanentError as exc:
        logger.warning("voicemail %s: transcription failed permanently (%s %s)", recording_sid,
                       type(exc).__name__, exc.code or exc.status or "")
        transcript, status = "", "failed"
    return voicemail_file(tenant=tenant, call=call, recording_sid=recording_sid, recording_url=recording_url,
                          transcript=transcript, source="openai", transcription_status=status,
                          duration_seconds=duration_seconds)
