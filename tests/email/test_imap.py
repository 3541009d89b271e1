"""The IMAP poller against a real IMAP server (pymap, started on a free loopback port by the fixture)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from channels_app.email.imap import mailbox_poll
from channels_app.models import EmailMailbox, InboundEmail
from conversations.models import ChannelMessage
from tests.email.conftest import CLINIC, plain

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_imap_allowed")]


def _inbound_turns() -> int:
    return ChannelMessage.objects.filter(channel="email", direction="inbound").count()


def test_poll_ingests_each_message_once_across_restarts(imap_mailbox, imap_server):
    first, second = plain(body="First question"), plain(body="Second question", sender="Bob <bob@example.org>")
    imap_server.append(first, second)
    result = mailbox_poll(mailbox_id=imap_mailbox.pk)
    assert result.error == "" and sorted(result.outcomes.values()) == ["accepted", "accepted"]
    imap_mailbox.refresh_from_db()
    assert imap_mailbox.last_uid == max(result.outcomes) and imap_mailbox.uidvalidity
    assert set(InboundEmail.objects.values_list("imap_uid", flat=True)) == set(result.outcomes)

    # A poller "restart": a new poll reads the stored watermark and finds nothing new.
    assert mailbox_poll(mailbox_id=imap_mailbox.pk).outcomes == {}
    third = plain(body="Third question")
    imap_server.append(third)
    later = mailbox_poll(mailbox_id=imap_mailbox.pk)
    assert list(later.outcomes.values()) == ["accepted"]
    assert _inbound_turns() == 3
    assert InboundEmail.objects.get(imap_uid=list(later.outcomes)[0]).message_id == third["Message-ID"]


def test_uidvalidity_change_rescans_without_duplicates(imap_mailbox, imap_server):
    message = plain(body="Hello again")
    imap_server.append(message)
    mailbox_poll(mailbox_id=imap_mailbox.pk)
    old_validity = EmailMailbox.objects.get(pk=imap_mailbox.pk).uidvalidity
    imap_server.restart()  # the server rebuilt the mailbox: new UIDVALIDITY, UIDs start over
    newer = plain(body="A new one")
    imap_server.append(message, newer)
    result = mailbox_poll(mailbox_id=imap_mailbox.pk)
    imap_mailbox.refresh_from_db()
    assert result.reset and imap_mailbox.uidvalidity != old_validity
    assert sorted(result.outcomes.values()) == ["accepted", "duplicate"]
    assert _inbound_turns() == 2


def test_oversize_and_malformed_messages_never_stop_the_poller(imap_mailbox, imap_server):
    imap_server.append(
        plain(body="x" * 6000, subject="huge"), b"Subject: no sender\r\n\r\nbody\r\n", plain(body="Fine message")
    )
    with override_settings(EMAIL_INBOUND_MAX_BYTES=4000):
        result = mailbox_poll(mailbox_id=imap_mailbox.pk)
    assert result.error == ""
    assert list(result.outcomes.values()) == ["rejected", "rejected", "accepted"]
    reasons = list(InboundEmail.objects.filter(status="rejected").order_by("imap_uid").values_list("reason", flat=True))
    assert reasons[0].startswith("oversize") and reasons[1].startswith("malformed")
    assert EmailMailbox.objects.get(pk=imap_mailbox.pk).last_uid == max(result.outcomes)


def test_new_mailbox_starts_at_the_current_end_and_bad_credentials_are_recorded(tenant, imap_mailbox, imap_server):
    imap_server.append(plain(body="Old mail from before we connected"))
    imap_mailbox.initial_sync = EmailMailbox.InitialSync.NEW
    imap_mailbox.save(update_fields=["initial_sync"])
    assert mailbox_poll(mailbox_id=imap_mailbox.pk).outcomes == {}
    imap_server.append(plain(body="New mail"))
    assert list(mailbox_poll(mailbox_id=imap_mailbox.pk).outcomes.values()) == ["accepted"]

    imap_mailbox.imap_password = "wrong"
    imap_mailbox.save(update_fields=["imap_password"])
    failed = mailbox_poll(mailbox_id=imap_mailbox.pk)
    assert failed.polled and failed.error
    row = EmailMailbox.objects.get(pk=imap_mailbox.pk)
    assert row.last_error and row.lease_token == ""  # the lease is released after a failure


def test_a_held_lease_keeps_a_second_poller_out(imap_mailbox):
    from datetime import timedelta

    from django.utils import timezone

    EmailMailbox.objects.filter(pk=imap_mailbox.pk).update(
        lease_until=timezone.now() + timedelta(minutes=1), lease_token="other"
    )
    assert mailbox_poll(mailbox_id=imap_mailbox.pk).polled is False


def test_uidvalidity_reset_with_nothing_in_the_rescan_window_does_not_reimport_the_mailbox(imap_mailbox, imap_server):
    """R8: an empty SINCE rescan must still move the watermark to the server's end (UIDNEXT - 1)."""
    imap_server.append(plain(body="Old one"))
    mailbox_poll(mailbox_id=imap_mailbox.pk)
    imap_server.restart()  # new UIDVALIDITY; the rebuilt folder holds years of old mail
    imap_server.append(plain(body="Old one"), plain(body="Older"), plain(body="Oldest"))
    # The last poll was "after" all of it, so the SINCE <day before last poll> rescan finds nothing.
    EmailMailbox.objects.filter(pk=imap_mailbox.pk).update(last_polled_at=timezone.now() + timedelta(days=10))
    result = mailbox_poll(mailbox_id=imap_mailbox.pk)
    assert result.reset and result.outcomes == {} and result.error == ""
    imap_mailbox.refresh_from_db()
    from imap_tools import MailBoxUnencrypted

    with MailBoxUnencrypted("127.0.0.1", imap_server.port).login(imap_server.user, imap_server.password) as box:
        assert imap_mailbox.last_uid == int(box.folder.status("INBOX", ["UIDNEXT"])["UIDNEXT"]) - 1
    assert mailbox_poll(mailbox_id=imap_mailbox.pk).outcomes == {}  # not UID 1:* → the whole mailbox
    imap_server.append(plain(body="Genuinely new"))
    assert list(mailbox_poll(mailbox_id=imap_mailbox.pk).outcomes.values()) == ["accepted"]
    assert _inbound_turns() == 2


@pytest.mark.parametrize(
    "host, port, security, reason",
    [
        ("127.0.0.1", 993, "ssl", "non-public address"),  # not in EMAIL_IMAP_ALLOWED_PRIVATE_HOSTS
        ("169.254.169.254", 993, "ssl", "non-public address"),  # cloud metadata
        ("10.0.0.5", 143, "starttls", "non-public address"),
        ("imap.example.com", 6379, "ssl", "port 6379 is not allowed"),
        ("93.184.216.34", 143, "none", "cleartext IMAP"),
    ],
)
def test_tenant_imap_settings_cannot_point_the_poller_at_internal_hosts(tenant, settings, host, port, security, reason):
    """S14: refused before any connection; recorded in last_error for staff."""
    settings.EMAIL_IMAP_ALLOWED_PRIVATE_HOSTS = []
    box = EmailMailbox.objects.create(
        tenant=tenant,
        address=CLINIC,
        imap_host=host,
        imap_port=port,
        imap_security=security,
        imap_username="u",
        imap_password="p",
    )
    result = mailbox_poll(mailbox_id=box.pk)
    assert result.error.startswith("UnsafeImapServer") and reason in result.error
    box.refresh_from_db()
    assert reason in box.last_error and box.last_uid == 0 and box.uidvalidity is None


@pytest.fixture
def tls_server(tmp_path):
    """A TLS listener with a self-signed certificate for 127.0.0.1 that greets like an IMAP server."""
    import datetime as dt
    import ipaddress
    import socket
    import ssl
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
                    tls.recv(1024)
                    tls.sendall(b"a NO [AUTHENTICATIONFAILED] nope\r\n")
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], str(cert_path)
    stop.set()
    thread.join(timeout=2)
    listener.close()


def test_imap_tls_verifies_the_server_certificate(tenant, settings, tls_server):
    """S4: a certificate we do not trust ends the poll; the same server under a configured CA is accepted."""
    port, ca_file = tls_server
    settings.EMAIL_IMAP_ALLOWED_PORTS = [port]
    box = EmailMailbox.objects.create(
        tenant=tenant,
        address=CLINIC,
        imap_host="127.0.0.1",
        imap_port=port,
        imap_security="ssl",
        imap_username="u",
        imap_password="p",
    )
    result = mailbox_poll(mailbox_id=box.pk)
    assert "CERTIFICATE_VERIFY_FAILED" in result.error
    settings.EMAIL_IMAP_CA_FILE = ca_file
    result = mailbox_poll(mailbox_id=box.pk)
    assert result.error and "CERTIFICATE" not in result.error  # the handshake passed; the login was refused
