"""Reads of the staff inbox: the cross-channel thread of a conversation."""

from __future__ import annotations

from django.contrib.postgres.search import SearchQuery
from django.db.models import Q

from conversations.models import Conversation, Interaction, TranscriptDocument

MAX_THREAD_TURNS = 2000


def conversation_thread(*, conversation: Conversation, limit: int = MAX_THREAD_TURNS) -> list[dict]:
    """Every turn of every session of the conversation, oldest first (the last ``limit``); each turn is
    ``{"interaction", "channel", "role", "text", "at", "staff_user_id"?, "staff_name"?}``."""
    turns: list[dict] = []
    rows = Interaction.objects.filter(conversation=conversation).order_by("started_at", "id")
    for interaction_id, channel, transcript in rows.values_list("id", "channel", "transcript").iterator(chunk_size=50):
        for turn in transcript or []:
            item = {
                "interaction": interaction_id,
                "channel": channel,
                "role": turn.get("role", ""),
                "text": turn.get("text", ""),
                "at": turn.get("at", ""),
            }
            if turn.get("role") == "staff":
                item["staff_user_id"] = turn.get("staff_user_id")
                item["staff_name"] = turn.get("staff_name", "")
            turns.append(item)
    turns.sort(key=lambda t: t["at"])
    return turns[-limit:]


def transcript_matches(query: str) -> Q:
    """A filter on ``Interaction`` rows whose transcript text matches ``query`` (web-search syntax: words,
    "quoted phrases", -excluded), served by the GIN index ``call_logs_transcript_fts``."""
    return Q(
        pk__in=Interaction.objects.annotate(doc=TranscriptDocument("transcript"))
        .filter(doc=SearchQuery(query[:200], config="english", search_type="websearch"))
        .values("pk")
    )
