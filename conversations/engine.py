"""The conversation engine's entry point for channels: one turn in, one reply out, on every channel.

Thin facade over :mod:`conversations.agent.engine` so channel code keeps one stable import:
``respond(interaction=…, text=…) -> Reply(text, actions)`` answers the customer's words (already recorded in
the transcript); ``greet(interaction=…)`` gives the opening line of a new session, aware of what is pending
in the conversation (continuity across channels).
"""

from __future__ import annotations

from conversations.agent.engine import Reply, greet, turn
from conversations.models import Interaction

__all__ = ["Reply", "greet", "respond"]


def respond(*, interaction: Interaction, text: str, deadline: float | None = None) -> Reply:
    """Answer ``text`` in ``interaction``'s conversation; reads and writes session state, runs tools.

    ``deadline`` (a ``time.monotonic()`` value) bounds the LLM: a caller on the phone cannot wait past Twilio's
    15 s webhook timeout. See :func:`conversations.agent.engine.turn`.
    """
    return turn(interaction=interaction, text=text, deadline=deadline)
