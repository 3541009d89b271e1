"""Emails a child process (daphne, a Celery worker) really sent, read back from Django's file backend.

Child processes get ``EMAIL_URL=filemail:////<dir>`` (:func:`email_url`; django-environ drops the path's first
slash), so every ``send_mail``/``EmailMessage.send`` there appends the RFC 5322 bytes to a file in ``<dir>``;
Django's ``filebased.EmailBackend`` separates messages with a line of 79 dashes. Tests read them with
:func:`sent_emails` — what the recipient would receive, parsed by the standard library.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

SEPARATOR = b"\n" + b"-" * 79 + b"\n"  # django.core.mail.backends.filebased.EmailBackend.write_message


def email_url(directory: Path) -> str:
    """The ``EMAIL_URL`` that makes a child process write its mail into ``directory`` (an absolute path)."""
    return f"filemail:///{directory}"


def sent_emails(directory: Path) -> list[EmailMessage]:
    """Every message written into ``directory``, oldest file first (one file per backend connection)."""
    messages = []
    for path in sorted(directory.glob("*.log"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        for chunk in path.read_bytes().split(SEPARATOR):
            if chunk.strip():
                messages.append(message_from_bytes(chunk, policy=policy.default))
    return messages


def text_of(message: EmailMessage) -> str:
    """The text/plain body of ``message`` (decoded)."""
    return message.get_body(preferencelist=("plain",)).get_content()
