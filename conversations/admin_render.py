"""HTML for transcripts and timelines in admin. Every value passes through ``format_html`` (escaped)."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

ROLE_LABELS = {"customer": "Customer", "agent": "Agent", "staff": "Staff", "system": "System"}


def local_time(value) -> str:
    """An aware datetime or ISO-8601 string in the active time zone (the clinic's, for its staff)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value[:19].replace("T", " ")
    if value is None:
        return ""
    return f"{timezone.localtime(value):%Y-%m-%d %H:%M}"


def render_transcript(turns: list[dict]) -> SafeString:
    """A transcript as an escaped ``<ol>``: time, speaker, text (text is always shown as text, never HTML)."""
    if not turns:
        return format_html("<p>{}</p>", "(no turns)")
    items = format_html_join(
        "",
        '<li class="cs-turn cs-{}"><span class="cs-at">{}</span> <strong>{}</strong>: <span>{}</span></li>',
        (
            (
                t.get("role", ""),
                local_time(t.get("at") or ""),
                ROLE_LABELS.get(t.get("role"), t.get("role", "?")),
                t.get("text", ""),
            )
            for t in turns
        ),
    )
    return format_html('<ol class="cs-transcript" style="list-style:none;padding-left:0">{}</ol>', items)


def render_timeline(interactions) -> SafeString:
    """Interactions (newest first) as escaped blocks: channel, direction, times, scores, transcript."""
    blocks = []
    for i in interactions:
        scores = (
            f"sentiment {i.sentiment if i.sentiment is not None else '–'} · intent {i.intent or '–'} · "
            f"lead {i.lead_score if i.lead_score is not None else '–'} · "
            f"CSAT {i.satisfaction if i.satisfaction is not None else '–'}" + (" · ESCALATED" if i.escalated else "")
        )
        blocks.append(
            format_html(
                '<div class="cs-interaction" style="border-left:3px solid #79aec8;padding:4px 8px;margin:8px 0">'
                '<div><strong>{}</strong> {} · {} → {} · <a href="{}">open</a></div><div>{}</div>{}</div>',
                i.get_channel_display(),
                i.direction,
                local_time(i.started_at),
                local_time(i.ended_at)[11:] if i.ended_at else "open",
                f"/admin/conversations/interaction/{i.pk}/change/",
                scores,
                render_transcript(i.transcript),
            )
        )
    if not blocks:
        return format_html("<p>{}</p>", "No interactions yet.")
    return format_html_join("", "{}", ((b,) for b in blocks))
