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

Lost work is re-driven (:func:`voicemail_redrive`, beat via ``channels_app.tasks.inbound_redrive``): the call's
row notes every recording as it arrives (``metadata["recording"]``: sid, url, status, duration_seconds and
``received_at``, ISO-8601 UTC); a ``completed`` recording with no ``voicemail`` row (no ChannelMessage with its
RecordingSid) is queued again — transcribed when the OpenAI-compatible transcriber is configured, else, when
Twilio's transcription never arrived, filed without a transcript (status ``missing``) so staff still get the
recording; a transcription arriving after that is added to the filed voicemail and may still escalate it, and
the row is enriched again (its ``interaction.enriched`` webhook then carries the transcript; its
``updated_at`` moves, so the warehouse export picks it up; ``conversation.closed`` is sent once per
conversation and is not repeated).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.db.models.fields.json import KT
from django.utils import timezone

from channels_app.voice.agent import Call, _escalate, call_find
from channels_app.voice.assess import assess
from conversations.llm_client import openai_client
from conversations.models import Channel, ChannelMessage, Direction, Interaction
from conversations.services import (
    interaction_append_turn,
    interaction_close,
    interaction_set_assessment,
    interaction_set_metadata,
    message_receive,
)
from conversations.triage import safety_reply
from conversations.triage.records import triage_record
from identity.models import Tenant
from providers import ProviderPermanentError, ProviderTransientError
from providers.twilio_client import TWILIO_HOST

logger = logging.getLogger(__name__)


#: OpenAI transcriber: a recording not filed this long after it arrived (or after it was last re-queued) is
#: queued again. Long enough for a normal attempt and its first retries (each attempt is bounded by the 120 s
#: hard time limit), short enough that an urgent voicemail whose task was lost (broker down, worker killed) still
#: escalates within minutes. Waiting out the longest possible retry chain (7 attempts at the time limit plus
#: every backoff: ~16 min) would make that patient wait a quarter of an hour to save, in the rare chain that is
#: still failing slowly, one duplicate speech-to-text request; filing and escalation stay once per recording.
REDRIVE_AFTER = timedelta(minutes=5)
#: Twilio transcriber: how long Twilio's transcription callback may take before the recording is filed without
#: a transcript (the callback is not retried by Twilio when our webhook failed).
TWILIO_TRANSCRIPTION_GRACE = timedelta(minutes=10)
#: Older recordings are left to staff (the call's row still shows the recording).
REDRIVE_MAX_AGE = timedelta(hours=1)
#: calls looked at per :func:`voicemail_redrive` run (oldest first; filed recordings are excluded in SQL)
REDRIVE_BATCH = 500
MISSING = "missing"


def stt_configured(tenant: Tenant | None = None) -> bool:
    """True when ``tenant``'s voicemails are transcribed by the OpenAI-compatible endpoint instead of Twilio:
    configured (``VOICEMAIL_TRANSCRIBER=openai`` and a key), and the tenant does not forbid LLMs."""
    if tenant is not None and tenant.llm_forbidden:
        return False
    return settings.VOICEMAIL_TRANSCRIBER == "openai" and bool(settings.OPENAI_API_KEY)


def voicemail_file(
    *,
    tenant: Tenant,
    call: Call,
    recording_sid: str,
    recording_url: str,
    transcript: str,
    source: str,
    transcription_status: str = "completed",
    duration_seconds: int | None = None,
) -> Interaction:
    """Write (once per ``recording_sid``) the ``voicemail`` row of ``call``'s caller and return it.

    ``transcript`` may be empty (transcription failed: staff still get the recording link). ``source`` is
    ``"twilio"`` or ``"openai"``.
    """
    assessment = assess(tenant=tenant, text=transcript, channel=Channel.VOICEMAIL)
    with transaction.atomic():
        received = message_receive(
            tenant=tenant,
            customer=call.interaction.customer,
            channel=Channel.VOICEMAIL,
            provider_id=recording_sid,
            sender=call.message.sender,
            recipient=call.message.recipient,
            text=transcript,
            turn_extra={"recording_sid": recording_sid},
        )
        voicemail = received.interaction
        if received.duplicate:
            if transcript and _add_late_transcript(
                voicemail=voicemail,
                transcript=transcript,
                source=source,
                status=transcription_status,
                assessment=assessment,
            ):
                return voicemail
            logger.info("voicemail %s already filed", recording_sid)
            return voicemail
        interaction_set_metadata(
            interaction=voicemail,
            updates={
                "call_sid": call.sid,
                "recording_sid": recording_sid,
                "recording_url": recording_url,
                "duration_seconds": duration_seconds,
                "transcription": {"source": source, "status": transcription_status},
                "assessment": {"source": assessment.source, "reason": assessment.reason},
            },
        )
        interaction_set_assessment(
            interaction=voicemail, urgency=assessment.urgency, intent=assessment.intent if transcript else None
        )
        if assessment.is_emergency:
            _escalate(voicemail, assessment)
            _text_safety_reply(tenant=tenant, voicemail=voicemail, to=call.message.sender, assessment=assessment)
        if assessment.result is not None:
            triage_record(interaction=voicemail, channel=Channel.VOICEMAIL, result=assessment.result)
        interaction_close(interaction=voicemail)
        interaction_set_metadata(interaction=call.interaction, updates={"voicemail_interaction_id": str(voicemail.pk)})
    return voicemail


def _text_safety_reply(*, tenant, voicemail: Interaction, to: str, assessment) -> None:
    """The caller has hung up: text them the safety reply (911 / 988 / Poison Control, their language) once per
    voicemail (idempotency key ``voicemail-safety:<interaction id>``); STOP is honoured by SMS delivery."""
    if assessment.result is None or not to:
        return
    from channels_app.sms.services import sms_send

    body = safety_reply(assessment.result, clinic=tenant.short_name)
    sms_send(
        tenant=tenant,
        customer=voicemail.customer,
        to=to,
        body=f"{tenant.short_name}: {body}",
        idempotency_key=f"voicemail-safety:{voicemail.pk}",
    )


def _add_late_transcript(*, voicemail: Interaction, transcript: str, source: str, status: str, assessment) -> bool:
    """A transcription arrived for a voicemail filed without one (status ``missing``, see
    :func:`voicemail_file_untranscribed`): append it as the customer's turn, store its assessment, escalate
    an emergency, and on commit queue the row's enrichment again (the row closed, was enriched and went out
    in the webhooks with an empty transcript; the new ``interaction.enriched`` carries the transcript). Every
    write moves ``updated_at``, so the warehouse export takes the row again. False (nothing written) when the
    voicemail was not waiting for one. Runs in the caller's transaction, under the voicemail row's lock."""
    row = Interaction.objects.select_for_update().get(pk=voicemail.pk)
    if ((row.metadata or {}).get("transcription") or {}).get("status") != MISSING:
        return False
    interaction_append_turn(interaction=row, role="customer", text=transcript, late_transcription=True)
    interaction_set_metadata(
        interaction=row,
        updates={
            "transcription": {"source": source, "status": status},
            "assessment": {"source": assessment.source, "reason": assessment.reason},
        },
    )
    interaction_set_assessment(interaction=row, urgency=assessment.urgency, intent=assessment.intent)
    if assessment.is_emergency:
        _escalate(row, assessment)
        caller = (
            ChannelMessage.objects.filter(interaction=row, direction=Direction.INBOUND)
            .values_list("sender", flat=True)
            .first()
        )
        _text_safety_reply(tenant=row.tenant, voicemail=row, to=caller or "", assessment=assessment)
    interaction_id = str(row.pk)
    transaction.on_commit(lambda: _enrich_again(interaction_id), robust=True)
    logger.info("voicemail %s: late transcription added; enrichment queued again", row.pk)
    return True


def _enrich_again(interaction_id: str) -> None:
    """Queue the enrichment task that closing a row queues (``interaction_closed``), for a closed row whose
    transcript changed. Not by sending ``interaction_closed`` again: the row closed once. On commit, ``robust``:
    a broker outage leaves the earlier (empty-transcript) scores, logged, like a lost close."""
    from conversations.signals import interaction_rescore_requested

    interaction_rescore_requested.send(sender=Interaction, interaction_id=interaction_id)


def recording_received(*, tenant: Tenant, params: Mapping[str, str]) -> None:
    """Handle the recording status callback: note the recording on the call (with ``received_at``, UTC) and,
    when the OpenAI-compatible transcriber is configured, queue its transcription. ``absent`` (silent / too
    short) files nothing. Queuing never fails the webhook: with the broker down the recording stays noted and
    :func:`voicemail_redrive` queues it later."""
    call = call_find(tenant=tenant, call_sid=params.get("CallSid", ""))
    if call is None:
        return
    recording = {
        "sid": params.get("RecordingSid", ""),
        "url": params.get("RecordingUrl", ""),
        "status": params.get("RecordingStatus", ""),
        "duration_seconds": _int(params.get("RecordingDuration")),
        "received_at": timezone.now().isoformat(),
    }
    with transaction.atomic():
        interaction_set_metadata(interaction=call.interaction, updates={"recording": recording})
        if recording["status"] != "completed" or not recording["sid"]:
            logger.info("recording %s of call %s: %s", recording["sid"], call.sid, recording["status"])
            return
        if stt_configured(tenant):
            from channels_app.voice.tasks import voicemail_transcribe

            message_id = call.message.pk
            transaction.on_commit(
                lambda: voicemail_transcribe.delay(
                    message_id, recording["sid"], recording["url"], recording["duration_seconds"]
                ),
                robust=True,
            )


def transcription_received(*, tenant: Tenant, params: Mapping[str, str]) -> Interaction | None:
    """Handle Twilio's transcription callback: file the voicemail with ``TranscriptionText`` (empty when
    ``TranscriptionStatus`` is ``failed``)."""
    call = call_find(tenant=tenant, call_sid=params.get("CallSid", ""))
    if call is None or not params.get("RecordingSid"):
        return None
    status = params.get("TranscriptionStatus", "")
    recording = (call.interaction.metadata or {}).get("recording") or {}
    return voicemail_file(
        tenant=tenant,
        call=call,
        recording_sid=params["RecordingSid"],
        recording_url=params.get("RecordingUrl", ""),
        transcript=(params.get("TranscriptionText") or "").strip() if status == "completed" else "",
        source="twilio",
        transcription_status=status or "completed",
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
    url = settings.TWILIO_API_BASE + recording_url[len(TWILIO_HOST) :]
    return url if url.endswith((".mp3", ".wav")) else url + ".mp3"


def recording_fetch(*, tenant: Tenant, recording_url: str) -> bytes:
    """Download a recording with the tenant's Twilio credentials. Raises ProviderTransientError (timeouts,
    connection errors, 429/5xx — Twilio may answer 404 for a moment while the file is stored, retried too)
    or ProviderPermanentError (other 4xx, foreign URL)."""
    url = _media_url(tenant, recording_url)
    timeout = httpx.Timeout(settings.VOICEMAIL_FETCH_TIMEOUT_SECONDS, connect=5.0)
    try:
        response = httpx.get(
            url, auth=(tenant.twilio_account_sid, tenant.twilio_auth_token), timeout=timeout, follow_redirects=True
        )
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

    client = openai_client(max_retries=0)
    try:
        result = client.audio.transcriptions.create(
            model=settings.VOICEMAIL_STT_MODEL, file=(filename, audio, "audio/mpeg")
        )
    except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
        raise ProviderTransientError(f"speech-to-text failed: {type(exc).__name__}") from exc
    except openai.APIStatusError as exc:
        raise ProviderPermanentError(f"speech-to-text failed: HTTP {exc.status_code}", status=exc.status_code) from exc
    return (getattr(result, "text", "") or "").strip()


def voicemail_transcribe(
    *,
    call_message_id: int,
    recording_sid: str,
    recording_url: str,
    duration_seconds: int | None = None,
    give_up: bool = False,
) -> Interaction | None:
    """Fetch, transcribe (OpenAI-compatible) and file one voicemail. Transient errors propagate (the task
    retries) unless ``give_up``; then, like permanent errors, the voicemail is filed without a transcript."""
    from conversations.models import ChannelMessage

    message = ChannelMessage.objects.select_related("interaction__customer", "tenant").get(pk=call_message_id)
    call = Call(message=message, interaction=message.interaction)
    tenant = message.tenant
    if tenant.llm_forbidden:  # the setting changed after this was queued: the audio never leaves for the LLM
        return voicemail_file_untranscribed(
            call_message_id=call_message_id,
            recording_sid=recording_sid,
            recording_url=recording_url,
            duration_seconds=duration_seconds,
        )
    try:
        transcript = speech_to_text(audio=recording_fetch(tenant=tenant, recording_url=recording_url))
        status = "completed"
    except ProviderTransientError:
        if not give_up:
            raise
        logger.warning("voicemail %s: transcription kept failing; filing it without a transcript", recording_sid)
        transcript, status = "", "failed"
    except ProviderPermanentError as exc:
        logger.warning(
            "voicemail %s: transcription failed permanently (%s %s)",
            recording_sid,
            type(exc).__name__,
            exc.code or exc.status or "",
        )
        transcript, status = "", "failed"
    return voicemail_file(
        tenant=tenant,
        call=call,
        recording_sid=recording_sid,
        recording_url=recording_url,
        transcript=transcript,
        source="openai",
        transcription_status=status,
        duration_seconds=duration_seconds,
    )


def voicemail_file_untranscribed(
    *, call_message_id: int, recording_sid: str, recording_url: str, duration_seconds: int | None = None
) -> Interaction:
    """File a recording whose Twilio transcription never came, without a transcript (transcription status
    ``missing``), so staff get the recording link; a transcription that arrives later is added to it
    (:func:`voicemail_file`). Once per RecordingSid, like every filing."""
    message = ChannelMessage.objects.select_related("interaction__customer", "tenant").get(pk=call_message_id)
    logger.warning("voicemail %s: no transcription arrived; filing it without one", recording_sid)
    return voicemail_file(
        tenant=message.tenant,
        call=Call(message=message, interaction=message.interaction),
        recording_sid=recording_sid,
        recording_url=recording_url,
        transcript="",
        source="twilio",
        transcription_status=MISSING,
        duration_seconds=duration_seconds,
    )


def _when(value) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def voicemail_redrive(*, now: datetime | None = None) -> int:
    """Re-queue completed recordings that were never filed as a voicemail; return how many were queued.

    A recording is due when it arrived (``received_at``) less than ``REDRIVE_MAX_AGE`` ago, no ``voicemail``
    row holds its RecordingSid, and the last chance it had — its arrival or its last re-queue
    (``redriven_at``) — is ``REDRIVE_AFTER`` old (OpenAI transcriber: ``voicemail_transcribe`` again) or
    ``TWILIO_TRANSCRIPTION_GRACE`` old (Twilio transcriber: :func:`voicemail_file_untranscribed`). Safe to run
    often: filing is once per RecordingSid and escalation once per row. Recordings already filed are excluded
    in SQL (their ``voicemail`` ChannelMessage, the filing's DB guard, exists) before the :data:`REDRIVE_BATCH`
    limit, so filed recordings never crowd unfiled ones out of a batch.
    """
    from channels_app.voice.tasks import voicemail_file_untranscribed_task, voicemail_transcribe

    now = now or timezone.now()
    stt = stt_configured()
    wait = REDRIVE_AFTER if stt else TWILIO_TRANSCRIPTION_GRACE
    due = []
    filed_rows = ChannelMessage.objects.filter(  # served by the unique (channel, provider_id) index
        channel=Channel.VOICEMAIL, tenant_id=OuterRef("tenant_id"), provider_id=OuterRef("recording_sid")
    )
    calls = (
        Interaction.objects.filter(  # updated_at moved when the recording was noted: a cheap bound
            channel=Channel.VOICE, metadata__recording__status="completed", updated_at__gte=now - REDRIVE_MAX_AGE
        )
        .annotate(recording_sid=KT("metadata__recording__sid"))
        .filter(~Exists(filed_rows))
    )
    for call in calls.order_by("updated_at")[:REDRIVE_BATCH]:
        recording = call.metadata.get("recording") or {}
        received = _when(recording.get("received_at"))
        if not recording.get("sid") or received is None or received < now - REDRIVE_MAX_AGE:
            continue
        if now - max(received, _when(recording.get("redriven_at")) or received) >= wait:
            due.append((call, recording))
    queued = 0
    for call, recording in due:
        message = ChannelMessage.objects.filter(
            tenant_id=call.tenant_id, channel=Channel.VOICE, provider_id=call.metadata.get("call_sid") or "-"
        ).first()
        if message is None or not _mark_redriven(call=call, recording_sid=recording["sid"], now=now):
            continue
        args = (message.pk, recording["sid"], recording.get("url", ""), recording.get("duration_seconds"))
        task = voicemail_transcribe if stt else voicemail_file_untranscribed_task  # (forbidden: filed untranscribed)
        task.apply_async(args, expires=wait.total_seconds())
        queued += 1
    if queued:
        logger.warning("re-queued %s voicemail recordings never filed", queued)
    return queued


def _mark_redriven(*, call: Interaction, recording_sid: str, now: datetime) -> bool:
    """Note ``redriven_at`` on the call's recording (under its row lock); False if the recording changed."""
    with transaction.atomic():
        row = Interaction.objects.select_for_update().get(pk=call.pk)
        recording = (row.metadata or {}).get("recording") or {}
        if recording.get("sid") != recording_sid:
            return False
        interaction_set_metadata(interaction=row, updates={"recording": {**recording, "redriven_at": now.isoformat()}})
    return True
