"""Reads of conversations and session state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Exists, Q
from django.utils import timezone

from conversations.models import Conversation, Interaction, SessionState


def state_get_all(
    *, conversation: Conversation, now: datetime | None = None, since: datetime | None = None
) -> dict[str, Any]:
    """All unexpired state of a conversation as ``{key: value}``; expired rows are never returned. With
    ``since``, only state written at or after it (a patient who opted out of memory: this session's own)."""
    now = now or timezone.now()
    rows = SessionState.objects.filter(conversation=conversation, expires_at__gt=now)
    if since is not None:
        rows = rows.filter(updated_at__gte=since)
    return dict(rows.values_list("key", "value"))


def state_get(*, conversation: Conversation, key: str, default: Any = None, now: datetime | None = None) -> Any:
    """One unexpired state value, or ``default``."""
    return state_get_all(conversation=conversation, now=now).get(key, default)


def recent_turns(*, conversation: Conversation, limit: int = 20, interaction: Interaction | None = None) -> list[dict]:
    """The conversation's last ``limit`` turns across all channels, oldest first; each turn gains ``channel``.
    With ``interaction``, only that session's turns (a patient who opted out of cross-channel memory)."""
    turns: list[dict] = []
    interactions = Interaction.objects.filter(conversation=conversation).order_by("-started_at")
    if interaction is not None:
        interactions = interactions.filter(pk=interaction.pk)
    for interaction in interactions.only("channel", "transcript").iterator(chunk_size=20):
        for turn in reversed(interaction.transcript):
            turns.append({**turn, "channel": interaction.channel})
            if len(turns) >= limit:
                break
        if len(turns) >= limit:
            break
    turns.sort(key=lambda t: t.get("at", ""))
    return turns


def ai_paused(conversation_id, *, at: datetime | None = None) -> bool:
    """True while staff have taken the conversation over: the AI must not answer on any channel.

    Called at the top of every AI reply path (SMS reply, chat, email triage, voice turn). With ``at`` (when the
    patient's message arrived) it is also True if a takeover covered that moment, so a reply task that runs
    late (a retry, a redrive after "Return to AI") never answers a message staff were handling.
    """
    return _takeovers().filter(_covering_now_or(at), conversation_id=conversation_id).exists()


def ai_paused_exists(*, conversation, at) -> Exists:
    """:func:`ai_paused` as an expression, to annotate the row that is read anyway (one statement fewer):
    ``conversation`` and ``at`` are expressions such as ``OuterRef("interaction__conversation_id")`` and
    ``OuterRef("created_at")``."""
    return Exists(_takeovers().filter(_covering_now_or(at), conversation_id=conversation))


def _takeovers():
    """``Takeover.objects``, imported late (the inbox imports these selectors)."""
    from conversations.inbox.models import Takeover

    return Takeover.objects


def _covering_now_or(at) -> Q:
    """Takeovers covering now, or ``at`` (a datetime or an expression) when given."""

    def covering(moment) -> Q:
        return Q(started_at__lte=moment, paused_until__gt=moment) & (
            Q(released_at__isnull=True) | Q(released_at__gt=moment)
        )

    now = timezone.now()
    return covering(now) if at is None else covering(now) | covering(at)
