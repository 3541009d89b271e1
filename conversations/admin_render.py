"""HTML for transcripts and timelines in admin. Every value passes through ``format_html`` (escaped)."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

ROLE_LABELS = {"customer": "Customer", "agent": "Agent", "staff": "Staff", "system": "System"}


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
                (t.get("at") or "")[:19].replace("T", " "),
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
                f"{i.started_at:%Y-%m-%d %H:%M} UTC",
                f"{i.ended_at:%H:%M}" if i.ended_at else "open",
                f"/admin/conversations/interaction/{i.pk}/change/",
                scores,
                render_transcript(i.transcript),
            )
        )
    if not blocks:
        return format_html("<p>{}</p>", "No interactions yet.")
    return format_html_join("", "{}", ((b,) for b in blocks))
