"""SMS compliance keywords, matched like Twilio's Advanced Opt-Out: the whole message, trimmed, any case.

Source: https://help.twilio.com/articles/223134027 (default opt-out, opt-in and help keywords). "cancel my
appointment" is not a keyword; only a message that is exactly "CANCEL" is.
"""

from __future__ import annotations

import enum


class Keyword(enum.Enum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def classify(body: str) -> Keyword | None:
    """The compliance keyword ``body`` is, or None for an ordinary message."""
    word = (body or "").strip().strip(".!").upper()
    if word in OPT_OUT_WORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_WORDS:
        return Keyword.OPT_IN
    if word in HELP_WORDS:
        return Keyword.HELP
    return None
