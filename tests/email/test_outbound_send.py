"""Outbound email goes out at most once per attempt, with no database lock held across the SMTP conversation.

A tiny real SMTP server (a socket speaking RFC 5321) answers each command; nothing of ours is mocked.
"""

from __future__ import annotations

import socketserver
import threading

import pytest
from django.core import mail
from django.db import connections

from channels_app.email.outbound import email_deliver, email_prepare
from channels_app.models import OutboundDelivery
from conversations.models import Channel, ChannelMessage
from conversations.services import session_open
from providers import ProviderTransientError
from tests import processes
from tests.email.conftest import PATIENT_EMAIL

pytestmark = pytest.mark.django_db(transaction=True)


class _Smtp(socketserver.StreamRequestHandler):
    """Speaks just enough SMTP: greets, accepts MAIL, answers RCPT with ``server.rcpt_reply``, takes DATA."""

    def _say(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self._say("220 test ESMTP")
        while line := self.rfile.readline():
            verb = line.decode().strip().split(" ")[0].split(":")[0].upper()
            if verb in ("EHLO", "HELO"):
                self._say("250 test")
            elif verb == "MAIL":
                self.server.during_send()
                self._say("250 ok")
            elif verb == "RCPT":
                self._say(self.server.rcpt_reply)
            elif verb == "DATA":
                self._say("354 go on")
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
                self.server.accepted += 1
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 ok")


@pytest.fixture
def smtp(settings):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.daemon_threads = True
    server.rcpt_reply, server.accepted, server.during_send = "250 ok", 0, lambda: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = server.server_address
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def pending(tenant, mailbox, patient):
    """A prepared outbound email; its queued task is never run here (no worker), the test delivers it."""
    interaction, _ = session_open(tenant=tenant, customer=patient, channel=Channel.EMAIL)
    message, created = email_prepare(
        interaction=interaction,
        to=PATIENT_EMAIL,
        body="See you Tuesday.",
        subject="Your visit",
        kind="confirmation",
        idempotency_key="t-1",
    )
    assert created
    return message


def test_sent_once_and_a_second_delivery_sends_nothing(smtp, pending):
    assert email_deliver(message_id=pending.pk).status == ChannelMessage.Status.SENT
    assert email_deliver(message_id=pending.pk).status == ChannelMessage.Status.SENT
    assert smtp.accepted == 1
    pending.refresh_from_db()
    assert pending.provider_id.startswith("<") and not OutboundDelivery.objects.get(message=pending).in_flight


def test_no_row_lock_is_held_while_the_smtp_server_talks(smtp, pending):
    seen = {}

    def try_lock() -> None:  # runs on the SMTP server's thread, i.e. another database connection
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT status FROM conversations_channelmessage WHERE id = %s FOR UPDATE NOWAIT", [pending.pk]
            )
            seen["status"] = cursor.fetchone()[0]
        connections["default"].close()

    smtp.during_send = try_lock
    email_deliver(message_id=pending.pk)
    assert seen == {"status": "pending"} and smtp.accepted == 1


def test_refused_connection_is_transient_and_the_retry_sends(settings, smtp, pending):
    port = settings.EMAIL_PORT
    settings.EMAIL_PORT = processes.free_port()
    with pytest.raises(ProviderTransientError):
        email_deliver(message_id=pending.pk)
    pending.refresh_from_db()
    assert pending.status == ChannelMessage.Status.PENDING
    assert not OutboundDelivery.objects.get(message=pending).in_flight  # the retry may claim at once
    settings.EMAIL_PORT = port
    assert email_deliver(message_id=pending.pk).status == ChannelMessage.Status.SENT and smtp.accepted == 1


@pytest.mark.parametrize(
    "reply, status",
    [
        ("450 4.2.1 mailbox busy <jane.doe@example.com>", ChannelMessage.Status.PENDING),
        ("550 5.1.1 <jane.doe@example.com>: Recipient address rejected", ChannelMessage.Status.FAILED),
    ],
)
def test_smtp_replies_are_classified_and_never_store_the_address(smtp, pending, reply, status):
    smtp.rcpt_reply = reply
    if status == ChannelMessage.Status.PENDING:
        with pytest.raises(ProviderTransientError):
            email_deliver(message_id=pending.pk)
    else:
        email_deliver(message_id=pending.pk)
    pending.refresh_from_db()
    assert pending.status == status and smtp.accepted == 0
    assert "jane" not in f"{pending.error_code} {pending.error_message}"
    if status == ChannelMessage.Status.FAILED:
        assert pending.error_message == "SMTPRecipientsRefused"
    assert len(mail.outbox) == 0
