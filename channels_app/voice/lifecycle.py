"""Call status callbacks: move a call forward through Twilio's statuses, record duration, close on the end.

Parameters per "Call resource: StatusCallback" (https://www.twilio.com/docs/voice/api/call-resource#statuscallback):
``CallSid``, ``CallStatus``, ``CallDuration`` (seconds, on the final callback), ``Timestamp`` (RFC 2822),
``SequenceNumber``, ``ErrorCode``. Callbacks can arrive out of order and more than once; the status only
moves forward (:data:`channels_app.voice.status.CALL_STATUS_RANK`), so a late ``ringing`` after ``completed``
is ignored. The first terminal status stores ``call_status`` / ``duration_seconds`` / ``call_ended_at``
(ISO-8601 UTC) in the row's metadata and closes the call's ``call_logs`` row (which queues its enrichment and
the ``conversation.closed`` webhook); session state is left alone, so a call that ends mid-booking keeps what
was pending for the next channel.

A caller may hang up while the agent is still answering a turn (``workflow["turn_in_progress"]``, see
:mod:`channels_app.voice.agent`: no lock is held while the LLM thinks). Closing then would let enrichment and
webhooks see a transcript without the last turn and land the reply on a closed row, so the close is deferred:
the status is recorded and the turn's last step closes the row (:func:`call_close_ended`) once the reply,
urgency, transfer or escalation is stored. A turn in progress for longer than the agent's stale limit is
treated as dead: the row closes at once and the turn is given up (its late answer is dropped). A turn whose
worker died after the close was deferred leaves the row to ``close_idle`` (closed, and enriched, after the
tenant's ``sms_idle_window`` of inactivity).
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from channels_app.voice.agent import IN_PROGRESS, turn_live
from channels_app.voice.status import CALL_STATUS_RANK, is_terminal
from conversations.models import Channel, ChannelMessage, Interaction
from conversations.selectors import state_get
from conversations.services import (
    interaction_close,
    interaction_set_metadata,
    interaction_set_workflow,
    message_status_update,
    state_delete,
    state_set,
)
from identity.models import Tenant

logger = logging.getLogger(__name__)

INTERRUPTED_CALL = "interrupted_call"  # session state key: {"call_sid", "ended_at"} of a call that dropped mid-way
#: ``metadata["ended_by"]`` values of a call that ended as intended (goodbye, voicemail, transfer to the desk)
INTENDED_ENDINGS = ("agent", "transfer")
#: metadata key: when the call ended (ISO-8601 UTC), stored with the terminal ``call_status``
CALL_ENDED_AT = "call_ended_at"


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def call_status_update(*, tenant: Tenant, params: Mapping[str, str]) -> bool:
    """Apply one status callback for ``tenant``; return True if the call moved forward.

    Unknown CallSids (not ours, or another tenant's) and unknown statuses are ignored (False). A terminal
    status closes the row unless a turn is being answered (not stale): then the turn closes it when it is done.
    """
    sid, status = params.get("CallSid", ""), params.get("CallStatus", "")
    at = _timestamp(params.get("Timestamp")) or timezone.now()
    at = min(at, timezone.now())
    with transaction.atomic():
        moved = message_status_update(
            channel=Channel.VOICE,
            provider_id=sid,
            status=status,
            error_code=params.get("ErrorCode", ""),
            error_message=params.get("ErrorMessage", ""),
            at=at,
            tenant=tenant,
            rank=CALL_STATUS_RANK,
        )
        if not moved:
            logger.info("call %s: status %r not applied (unknown call, duplicate or out of order)", sid, status)
            return False
        interaction_id = (
            ChannelMessage.objects.filter(tenant=tenant, channel=Channel.VOICE, provider_id=sid)
            .values_list("interaction_id", flat=True)
            .get()
        )
        # the row lock (already taken by message_status_update) orders us against the turn's last step
        interaction: Interaction = (
            Interaction.objects.select_for_update(of=("self",)).select_related("conversation").get(pk=interaction_id)
        )
        updates: dict = {"call_status": status}
        if (duration := _int(params.get("CallDuration"))) is not None:
            updates["duration_seconds"] = duration
        if not is_terminal(status):
            interaction_set_metadata(interaction=interaction, updates=updates)
            return True
        updates[CALL_ENDED_AT] = at.isoformat()
        live = turn_live(interaction, timezone.now())
        if not live and interaction.workflow.get(IN_PROGRESS):
            logger.warning("call %s ended with a stale turn in progress: given up", sid)
            # the late answer, if it ever comes, is dropped (its token is gone)
            interaction_set_workflow(interaction=interaction, updates={IN_PROGRESS: None})
        interaction_set_metadata(interaction=interaction, updates=updates)
        # with a turn in progress this is provisional: call_close_ended takes it back on an intended ending
        _note_interrupted(interaction, status=status, sid=sid, at=at)
        if live:
            logger.info(
                "call %s ended while turn %s is answered: closing when it is done",
                sid,
                interaction.workflow[IN_PROGRESS].get("turn"),
            )
        else:
            interaction_close(interaction=interaction, at=at)
        from channels_app.voice.callback import callback_call_ended

        callback_call_ended(interaction=interaction, status=status)
    return True


def _note_interrupted(interaction: Interaction, *, status: str, sid: str, at: datetime) -> None:
    """Remember a call that dropped mid-way (``completed`` without an intended ending, after something was said)
    for the next session's greeting: session state :data:`INTERRUPTED_CALL` = ``{"call_sid", "ended_at"}``."""
    intended = interaction.metadata.get("ended_by") in INTENDED_ENDINGS
    if status == "completed" and not intended and interaction.transcript:
        state_set(
            conversation=interaction.conversation,
            key=INTERRUPTED_CALL,
            value={"call_sid": sid, "ended_at": at.isoformat()},
        )


def call_ended(interaction: Interaction) -> bool:
    """True when a terminal call status has been recorded on the call's row (the caller is gone)."""
    return is_terminal((interaction.metadata or {}).get("call_status", ""))


def call_close_ended(*, interaction: Interaction, sid: str) -> bool:
    """Close the row of call ``sid`` whose end was recorded while a turn was being answered; call under the
    row lock, after the turn's writes and after clearing ``turn_in_progress``. The ended time is the recorded
    :data:`CALL_ENDED_AT` (``interaction_close`` moves it up to the last activity, i.e. the stored reply). The
    provisional interrupted-call note is taken back when the turn ended the call as intended (goodbye, transfer).
    Returns False when the call has not ended or the row is already closed (closing is once)."""
    if not call_ended(interaction):
        return False
    metadata = interaction.metadata or {}
    if metadata.get("ended_by") in INTENDED_ENDINGS:
        noted = state_get(conversation=interaction.conversation, key=INTERRUPTED_CALL) or {}
        if noted.get("call_sid") == sid:
            state_delete(conversation=interaction.conversation, keys=[INTERRUPTED_CALL])
    ended = _iso(metadata.get(CALL_ENDED_AT))
    closed = interaction_close(interaction=interaction, at=ended)
    if closed:
        logger.info("call %s: closed after its last turn (the caller hung up while it was answered)", sid)
    return closed


def _iso(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None
