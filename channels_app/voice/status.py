"""Twilio call statuses, forward-only: see :mod:`conversations.twilio_statuses` (the one definition)."""

from __future__ import annotations

from conversations.twilio_statuses import CALL_STATUS_RANK, CALL_TERMINAL

__all__ = ["CALL_STATUS_RANK", "is_terminal"]


def is_terminal(status: str) -> bool:
    """True for the statuses after which Twilio sends nothing more about the call."""
    return status in CALL_TERMINAL
