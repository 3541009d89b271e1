"""Keep link secrets out of logs: acknowledge links (``/a/<token>``) and chat links (``/c/<token>``) carry
their secret in the URL path, and both daphne's access log and Django's ``django.request`` warnings
("Not Found: /a/…") would otherwise write it to stdout/stderr and on to any log shipper.
"""

from __future__ import annotations

import logging
import re
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

# "/a/<token>" or "/c/<token>" as a whole path, alone ("GET /a/…") or after a scheme and host
# ("https://clinic.example/a/…"); never inside a longer path ("/admin/a/", "/api/v1/c/").
SECRET_PATH = re.compile(r"(?P<origin>https?://[^/\s\"']+)?(?P<prefix>/[ac]/)[^\s\"'?#]+")


def _replace(match: re.Match) -> str:
    text, start = match.string, match.start()
    if not match.group("origin") and start > 0 and (text[start - 1].isalnum() or text[start - 1] in "/_-."):
        return match.group(0)  # "/admin/a/…": part of another path
    return f"{match.group('origin') or ''}{match.group('prefix')}[redacted]"


def redact(text: str) -> str:
    """``text`` with the token of every ``/a/<token>`` and ``/c/<token>`` path replaced by ``[redacted]``."""
    return SECRET_PATH.sub(_replace, text)


class RedactingStream:
    """A text stream wrapper that passes every write through :func:`redact` (everything else is delegated)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class RedactLinkSecrets(logging.Filter):
    """A logging filter (used on every handler in ``settings.LOGGING``) that redacts link secrets from the
    formatted message; records are never dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class JsonLogFormatter(JsonFormatter):
    """``LOG_FORMAT=json``: one JSON object per line with only the fields listed in :data:`JSON_LOG_FIELDS`
    (``time``, ``level``, ``logger``, ``message``, ``request_id``, ids such as ``tenant``/``customer``, the
    traceback), every string passed through :func:`redact`. Whatever else a record carries — Django's
    ``request`` object (its repr holds the path, so a link secret), a ``scope`` — is left out."""

    def add_fields(self, log_data, record, message_dict) -> None:
        super().add_fields(log_data, record, message_dict)
        for key in list(log_data):
            if key not in JSON_LOG_FIELDS:
                del log_data[key]
            elif isinstance(log_data[key], str):
                log_data[key] = redact(log_data[key])


JSON_LOG_FIELDS = frozenset(
    {"time", "level", "logger", "message", "request_id", "status_code", "exc_info", "stack_info"}
    | {"tenant", "customer", "resolved", "other"}  # ids our own log calls add with extra=
)
