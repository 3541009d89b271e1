"""Voice tasks: thin wrappers that load by id and call a service (retried on transient provider errors)."""

from celery import shared_task

from channels_app.voice import callback, recordings, voicemail
from providers import PROVIDER_RETRY


@shared_task(acks_late=True, reject_on_worker_lost=True, **PROVIDER_RETRY)
def voice_place_callback(callback_request_id: int) -> None:
    """Dial one callback request (idempotent: one call per request, row-locked dial)."""
    callback.callback_place(callback_request_id=callback_request_id)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, **PROVIDER_RETRY)
def voicemail_transcribe(
    self, call_message_id: int, recording_sid: str, recording_url: str, duration_seconds: int | None = None
) -> None:
    """Transcribe and file one voicemail (idempotent: one ``voicemail`` row per RecordingSid, escalated once,
    so a worker killed mid-task puts it back on the queue). On the last attempt the voicemail is filed
    without a transcript rather than lost; a task lost altogether is re-queued by ``inbound_redrive``."""
    voicemail.voicemail_transcribe(
        call_message_id=call_message_id,
        recording_sid=recording_sid,
        recording_url=recording_url,
        duration_seconds=duration_seconds,
        give_up=self.request.retries >= self.max_retries,
    )


@shared_task(acks_late=True, reject_on_worker_lost=True)
def voicemail_file_untranscribed_task(
    call_message_id: int, recording_sid: str, recording_url: str, duration_seconds: int | None = None
) -> None:
    """File a recording whose Twilio transcription never came, without a transcript (idempotent: once per
    RecordingSid). Queued by ``inbound_redrive``."""
    voicemail.voicemail_file_untranscribed(
        call_message_id=call_message_id,
        recording_sid=recording_sid,
        recording_url=recording_url,
        duration_seconds=duration_seconds,
    )


@shared_task(acks_late=True, reject_on_worker_lost=True, **PROVIDER_RETRY)
def recording_delete(deletion_id: int) -> bool:
    """Delete one recording at the provider (idempotent: a 404 means already gone; a done row is skipped)."""
    return recordings.recording_delete_run(deletion_id=deletion_id)


@shared_task
def recording_deletions_redrive_task() -> int:
    """Beat: queue again recording deletions still pending (lost tasks, broker outages, retries used up)."""
    return recordings.recording_deletions_redrive()
