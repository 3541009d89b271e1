"""Twilio message and call statuses: one typed definition with their forward-only order, for SMS, voice and
escalation (imported by ``channels_app`` and ``escalation``; nothing here touches the database).

Message statuses: https://www.twilio.com/docs/messaging/api/message-resource#message-status-values
(``accepted``, ``scheduled``, ``queued``, ``sending``, ``sent``, ``delivery_unknown``, ``delivered``,
``undelivered``, ``failed``, ``receiving``, ``received``, ``canceled``, ``read``, ``partially_delivered``).
Call statuses: https://www.twilio.com/docs/voice/api/call-resource#call-status-values (``queued``, ``ringing``,
``in-progress``, ``completed``, ``busy``, ``failed``, ``no-answer``, ``canceled``) plus the status-callback event
``initiated`` and the AMD-era ``answered``. ``pending`` and ``suppressed`` are ours (not yet handed to Twilio;
not sent because the recipient opted out). A callback may only move a status to a higher rank; terminal
statuses share the top rank, so the first terminal one wins.
"""

from __future__ import annotations

from django.db import models

#: Longest status value stored in ``ChannelMessage.status`` ("partially_delivered").
MAX_LENGTH = 20


class MessageStatus(models.TextChoices):
    """A ChannelMessage's status (SMS, chat, email; Twilio's message statuses plus ours)."""

    PENDING = "pending", "Pending (not yet handed to the provider)"
    ACCEPTED = "accepted", "Accepted"
    SCHEDULED = "scheduled", "Scheduled"
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERY_UNKNOWN = "delivery_unknown", "Delivery unknown"
    RECEIVING = "receiving", "Receiving"
    RECEIVED = "received", "Received"
    DELIVERED = "delivered", "Delivered"
    PARTIALLY_DELIVERED = "partially_delivered", "Partially delivered"
    UNDELIVERED = "undelivered", "Undelivered"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    SUPPRESSED = "suppressed", "Not sent (recipient opted out)"
    READ = "read", "Read"


class CallStatus(models.TextChoices):
    """A call's status (Twilio's call statuses and status-callback events; ``pending`` is ours)."""

    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    INITIATED = "initiated", "Initiated"
    RINGING = "ringing", "Ringing"
    IN_PROGRESS = "in-progress", "In progress"
    ANSWERED = "answered", "Answered"
    COMPLETED = "completed", "Completed"
    BUSY = "busy", "Busy"
    FAILED = "failed", "Failed"
    NO_ANSWER = "no-answer", "No answer"
    CANCELED = "canceled", "Canceled"


MESSAGE_STATUS_RANK: dict[str, int] = {
    "pending": 0,
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivery_unknown": 3,
    "receiving": 3,
    "received": 4,
    "delivered": 4,
    "partially_delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "suppressed": 4,
    "read": 5,
}
CALL_STATUS_RANK: dict[str, int] = {
    "pending": 0,
    "queued": 1,
    "initiated": 1,
    "ringing": 2,
    "in-progress": 3,
    "answered": 3,
    "completed": 4,
    "busy": 4,
    "failed": 4,
    "no-answer": 4,
    "canceled": 4,
}
CALL_TERMINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
#: A page (SMS or call) that reached the responder, or that did not (the ladder moves on).
DELIVERED = frozenset({"delivered", "read", "in-progress", "answered", "completed"})
NOT_DELIVERED = frozenset({"undelivered", "failed", "busy", "no-answer", "canceled"})
