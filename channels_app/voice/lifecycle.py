"""Call status callbacks: move a call forward through Twilio's statuses, record duration, close on the end.

Parameters per "Call resource: StatusCallback" (https://www.twilio.com/docs/voice/api/call-resource#statuscallback):
``CallSid``, ``CallStatus``, ``CallDuration`` (seconds, on the final callback), ``Timestamp`` (RFC 2822),
``SequenceNumber``, ``ErrorCode``. Callbacks can arrive out of order and more than once; the status only
moves forward (:data:`channels_app.voice.status.CALL_STATUS_RANK`), so a late ``ringing`` after ``completed``
is ignored. The first terminal status closes the call's ``call_logs`` row (which queues its enrichment) and
stores ``call_status`` / ``duration_seconds`` in its metadata; session state is left alone, so a call that
ends mid-booking keeps what was pending for the next channel.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from channels_app.voice.status import CALL_STATUS_RANK, is_terminal
from conversations.models import Channel, ChannelMessage, Interaction
from conversations.services import interaction_close, interaction_set_metadata, message_status_update, state_set
from identity.models import Tenant

logger = logging.getLogger(__name__)

INTERRUPTED_CALL = "interrupted_call"  # session state key: {"call_sid", "ended_at"} of a call that dropped mid-way
#: ``metadata["ended_by"]`` values of a call that ended as intended (goodbye, voicemail, transfer to the desk)
INTENDED_ENDINGS = ("agent", "transfer")


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

    Unknown CallSids (not ours, or another tenant's) and unknown statuses are ignored (False).
    """
    sid, status = params.get("CallSid", ""), params.get("CallStatus", "")
    at = _timestamp(params.get("Timestamp")) or timezone.now()
    at = min(at, timezone.now())
    with transaction.atomic():
        moved = message_status_update(
            channel=Channel.VOICE, provider_id=sid, status=status, error_code=params.get("ErrorCode", ""),
            error_message=params.get("ErrorMessage", ""), at=at, tenant=tenant, rank=CALL_STATUS_RANK,
        )
        if not moved:
            logger.info("call %s: status %r not applied (unknown call, duplicate or out of order)", sid, status)
            return False
        message = ChannelMessage.objects.select_related("interaction").get(
            tenant=tenant, channel=Channel.VOICE, provider_id=sid)
        interaction: Interaction = message.interaction
        updates: dict = {"call_status": status}
        if (duration := _int(params.get("CallDuration"))) is not None:
            updates["duration_seconds"] = duration
        if is_terminal(status):
            interaction_set_metadata(interaction=interaction, updates=updates)
            intended = interaction.metadata.get("ended_by") in INTENDED_ENDINGS
            if status == "completed" and not intended and interaction.transcript:
                state_set(conversation=interaction.conversation, key=INTERRUPTED_CALL,
                          value={"call_sid": sid, "ended_at": at.isoformat()})
            interaction_close(interaction=interaction, at=at)
            from channels_app.voice.callback import callback_call_ended

            callback_call_ended(interaction=interaction, status=status)
        else:
            interaction_set_metadata(interaction=interaction, updates=updates)
    return True
