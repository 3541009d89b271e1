"""The new part of a reply: quoted history and signature removed.

Uses ``mail-parser-reply`` (maintained; recognises Gmail's "On … wrote:", Outlook's "From: / Sent:" block and
"-----Original Message-----", Apple Mail's quoted attribution, and common signatures such as "-- " and
"Sent from my iPhone"). What it leaves is cleaned once more here: ``>``-quoted lines and a trailing "-- "
signature separator are dropped. When the HTML part is the only body, blockquotes are removed before the text
is read (Gmail / Apple Mail put the history in one).
"""

from __future__ import annotations

import logging
import re

from mailparser_reply import EmailReplyParser

from channels_app.email.parse import ParsedEmail, html_to_text

logger = logging.getLogger(__name__)

LANGUAGES = ["en", "de", "fr", "es", "it", "nl"]
_SIG_SEPARATOR = re.compile(r"^(-- ?|__+|—+)$")
_MOBILE_SIG = re.compile(r"^(sent from my \w+.*|get outlook for \w+.*|sent from (yahoo )?mail for \w+.*)$", re.I)


def extract_reply(text: str) -> str:
    """The newest reply in ``text`` (a plain-text body), without quoted history and signature."""
    if not (text or "").strip():
        return ""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        replies = EmailReplyParser(languages=LANGUAGES).read(text=normalised).replies
        body = replies[0].body if replies else normalised
    except Exception as exc:  # noqa: BLE001 - a parser failure keeps the whole text, minus quotes
        # No traceback: its frames and message may quote the patient's email body.
        logger.warning("reply parser failed (%s); using the quote-stripped text", type(exc).__name__)
        body = normalised
    lines = []
    for line in body.split("\n"):
        stripped = line.strip()
        if _SIG_SEPARATOR.match(stripped):
            break
        if stripped.startswith(">") or _MOBILE_SIG.match(stripped):
            continue
        lines.append(line.rstrip())
    return "\n".join(lines).strip()


def reply_of(parsed: ParsedEmail) -> str:
    """The reply text of a parsed message: from its text part, else from its HTML without blockquotes."""
    if parsed.has_text_part:
        found = extract_reply(parsed.text)
        if found:
            return found
    if parsed.html:
        return extract_reply(html_to_text(parsed.html, drop_quotes=True))
    return ""
