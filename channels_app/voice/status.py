"""Forward-only ordering of Twilio call statuses.

Statuses from "Call resource: call status values"
(https://www.twilio.com/docs/voice/api/call-resource#call-status-values): ``queued``, ``ringing``,
``in-progress``, ``completed``, ``busy``, ``failed``, ``no-answer``, ``canceled``; status callback events add
``initiated`` (https://www.twilio.com/docs/voice/api/call-resource#statuscallbackevent). A callback may only move
a call to a higher rank; the terminal statuses share the top rank, so the first terminal one wins. ``pending``
is ours: an outbound call not yet handed to Twilio. This map is separate from
``conversations.models.MESSAGE_STATUS_RANK`` so SMS ordering is untouched.
"""

from __future__ import annotations

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
TERMINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def is_terminal(status: str) -> bool:
    """True for the statuses after which Twilio sends nothing more about the call."""
    return status in TERMINAL
