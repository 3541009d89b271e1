"""How a staff message reaches the patient: one sender per channel, registered by the channel adapters.

``conversations`` may not import ``channels_app`` (imports point one way, DESIGN.md), so ``channels_app.staff``
registers a :class:`StaffSender` per channel at start-up and :func:`conversations.inbox.services.staff_message_send`
looks it up here. A sender writes the staff turn (role ``staff``) and hands the message to the channel's
existing outbound pipeline (SMS and email: a pending ``ChannelMessage`` delivered by its task, idempotent,
retried, status callbacks; chat: a frame to the open widget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from conversations.models import ChannelMessage, Conversation, Interaction


class ChannelUnavailable(Exception):
    """The patient cannot be reached on this channel now; ``code``: ``opted_out`` (SMS STOP), ``no_address``
    (no phone / email on file), ``not_connected`` (no open chat), ``unknown_channel``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class StaffOutgoing:
    """What a sender is asked to send: ``body`` as typed, ``turn_extra`` for the transcript turn (the staff user's
    id and first name), ``idempotency_key`` unique per message of the tenant."""

    conversation: Conversation
    body: str
    idempotency_key: str
    staff_name: str
    turn_extra: dict


@dataclass
class StaffSent:
    channel: str
    interaction: Interaction
    turn: dict
    message: ChannelMessage | None = None


class StaffSender(Protocol):
    channel: str

    def unavailable(self, *, conversation: Conversation) -> ChannelUnavailable | None:
        """Why the patient cannot be reached on this channel now, or None."""

    def send(self, *, outgoing: StaffOutgoing) -> StaffSent:
        """Record the staff turn and queue the delivery (inside the caller's transaction)."""


SENDERS: dict[str, StaffSender] = {}


def register(sender: StaffSender) -> StaffSender:
    SENDERS[sender.channel] = sender
    return sender
