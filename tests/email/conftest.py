"""Fixtures for the email channel: a clinic mailbox, a patient, real RFC 5322 messages, a real IMAP server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from django.utils import timezone

from channels_app.models import EmailMailbox
from identity.services import customer_resolve

CLINIC = "frontdesk@sunrise.example"
PATIENT_EMAIL = "jane.doe@example.com"
PATIENT_PHONE = "+15551230001"
MTA = "mx.sunrise.test"  # the authserv-id of "our" receiving MTA in these tests


@pytest.fixture(autouse=True)
def _trusted_mta(settings):
    settings.EMAIL_TRUSTED_AUTHSERV_IDS = [MTA]


def authenticated(msg, *, result: str = "pass", authserv_id: str = MTA):
    """Prepend what our receiving MTA adds after checking DKIM/DMARC for the From domain (RFC 8601)."""
    domain = str(msg["From"]).rpartition("@")[2].rstrip(">").strip()
    header = f"{authserv_id}; dkim={result} header.d={domain} header.s=s1; dmarc={result} header.from={domain}"
    items = [("Authentication-Results", header), *msg.items()]
    for name in list(dict.fromkeys(k for k, _ in msg.items())):
        del msg[name]
    for name, value in items:
        msg[name] = value
    return msg


@pytest.fixture
def patient(tenant):
    return customer_resolve(
        tenant=tenant,
        phone=PATIENT_PHONE,
        email=PATIENT_EMAIL,
        display_name="Jane Doe",
        verified_kinds=("phone", "email"),
    ).customer


def plain(
    *,
    body: str,
    subject: str = "Question",
    sender: str = f"Jane Doe <{PATIENT_EMAIL}>",
    to: str = CLINIC,
    headers: dict | None = None,
    message_id: str | None = None,
    auth: bool = True,
) -> EmailMessage:
    """A simple text/plain message as a mail client sends it (``auth``: as our MTA hands it on, with an
    Authentication-Results header vouching for the From domain)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = format_datetime(timezone.now())
    msg["Message-ID"] = message_id or make_msgid(domain="mail.example.com")
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return authenticated(msg) if auth else msg


def gmail_reply(
    original: EmailMessage, *, body: str, sender: str = f"Jane Doe <{PATIENT_EMAIL}>", auth: bool = True
) -> EmailMessage:
    """A reply as Gmail builds it: multipart/alternative, quoted history in text ("On … wrote:" + "> ") and in
    HTML (``div.gmail_quote`` + ``blockquote``), In-Reply-To / References set, sent to the Reply-To address."""
    original_text = original.get_body(preferencelist=("plain",)).get_content()
    quoted = "\n".join(f"> {line}" for line in original_text.splitlines())
    when = "Mon, Mar 2, 2026 at 9:12 AM"
    author = original["From"]
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = original["Reply-To"] or original["From"]
    msg["Subject"] = "Re: " + str(original["Subject"])
    msg["Date"] = format_datetime(timezone.now())
    msg["Message-ID"] = make_msgid(domain="mail.gmail.com")
    msg["In-Reply-To"] = original["Message-ID"]
    msg["References"] = " ".join(filter(None, [str(original.get("References") or ""), original["Message-ID"]]))
    msg.set_content(f"{body}\n\nThanks,\nJane\n\nOn {when} {author} wrote:\n{quoted}\n")
    html_quote = "<br>".join(original_text.splitlines())
    msg.add_alternative(
        f'<div dir="ltr">{body}<div><br></div><div>Thanks,<br>Jane</div></div><br><div class="gmail_quote">'
        f'<div dir="ltr" class="gmail_attr">On {when} {author} wrote:<br></div>'
        f'<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex">{html_quote}</blockquote></div>',
        subtype="html",
    )
    return authenticated(msg) if auth else msg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ImapServer:
    """A real IMAP4rev1 server (pymap's in-memory backend) on a free loopback port; ``restart()`` gives a new
    process, hence a new UIDVALIDITY — what a server does after its mailbox is rebuilt."""

    user, password = "clinic", "secret-pass"

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.log_dir = log_dir
        self.proc = None

    def start(self) -> None:
        log = open(self.log_dir / f"pymap-{time.monotonic_ns()}.log", "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from pymap.main import main; sys.exit(main())",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "dict",
                "--demo-user",
                self.user,
                "--demo-password",
                self.password,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("pymap did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # an in-memory test server: nothing to flush
            self.proc.wait(timeout=10)

    def uidvalidity(self) -> int:
        from imap_tools import MailBoxUnencrypted

        with MailBoxUnencrypted("127.0.0.1", self.port).login(self.user, self.password) as box:
            return int(box.folder.status("INBOX", ["UIDVALIDITY"])["UIDVALIDITY"])

    def restart(self) -> None:
        """A new server process with a new UIDVALIDITY. pymap derives it from the current second plus 16 random
        bits, so a restart within the same second keeps it 1 time in 65,536: restart again until it differs."""
        before = self.uidvalidity() if self.proc and self.proc.poll() is None else None
        for _ in range(5):
            self.stop()
            self.start()
            if before is None or self.uidvalidity() != before:
                return
        raise RuntimeError("pymap kept its UIDVALIDITY across restarts")

    def append(self, *messages) -> None:
        from imap_tools import MailBoxUnencrypted

        with MailBoxUnencrypted("127.0.0.1", self.port).login(self.user, self.password) as box:
            for message in messages:
                box.append(message if isinstance(message, bytes) else message.as_bytes(), "INBOX")


@pytest.fixture(scope="session")
def imap_server(tmp_path_factory):
    server = ImapServer(tmp_path_factory.mktemp("imap"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def local_imap_allowed(settings, imap_server):
    """The loopback test server is an explicitly allowed private host on a test port (the IMAP host guard)."""
    settings.EMAIL_IMAP_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    settings.EMAIL_IMAP_ALLOWED_PORTS = [143, 993, imap_server.port]


@pytest.fixture
def imap_mailbox(tenant, imap_server, local_imap_allowed):
    imap_server.restart()  # an empty INBOX for every test
    tenant.short_name = "Sunrise Clinic"
    tenant.save(update_fields=["short_name"])
    return EmailMailbox.objects.create(
        tenant=tenant,
        address=CLINIC,
        imap_host="127.0.0.1",
        imap_port=imap_server.port,
        imap_security=EmailMailbox.Security.NONE,
        imap_username=imap_server.user,
        imap_password=imap_server.password,
        initial_sync=EmailMailbox.InitialSync.ALL,
    )
