"""One bad email is never a wall: NUL is stored replaced (the original kept raw), a message that cannot be
stored is quarantined (raw kept, listed with its reason, admins alerted) and the IMAP watermark moves past it."""

from __future__ import annotations

import base64

import pytest
from django.core import mail
from django.core.files.storage import default_storage
from django.db import connection

from channels_app.email import ingest, tasks
from channels_app.email.imap import mailbox_poll
from channels_app.models import EmailMailbox, InboundEmail
from conversations.models import ChannelMessage
from identity.models import TenantMembership
from tests.email.conftest import CLINIC, PATIENT_EMAIL, authenticated

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_imap_allowed")]

SECRET = "inbound:s3cret-Pa55"
NUL_EMAIL = (
    f"From: Jane Doe <{PATIENT_EMAIL}>\r\nTo: {CLINIC}\r\nSubject: =?utf-8?q?chest=00pain?=\r\n"
    "Message-ID: <nul-1@mail.example.com>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    "I have chest=00 pain since this morning\r\n"
).encode()


def _message(body: str, message_id: str) -> bytes:
    raw = (
        f"From: Jane Doe <{PATIENT_EMAIL}>\r\nTo: {CLINIC}\r\nSubject: Question\r\nMessage-ID: <{message_id}>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()
    from email import message_from_bytes, policy

    return authenticated(message_from_bytes(raw, policy=policy.default)).as_bytes()


@pytest.fixture
def clinic_admin(tenant, django_user_model):
    user = django_user_model.objects.create_user("clinic-admin", "admin@sunrise.example", "x")
    TenantMembership.objects.create(user=user, tenant=tenant, role=TenantMembership.Role.ADMIN)
    return user


@pytest.fixture
def poison(monkeypatch):
    """Messages whose text says POISON cannot be stored: the database refuses them (as it refused NUL before
    the edges replaced it) — a real DataError raised by PostgreSQL's driver mid-ingest."""
    real = ingest.message_receive

    def message_receive(**kwargs):
        if "POISON" in kwargs["text"]:
            with connection.cursor() as cursor:
                cursor.execute("SELECT %s::text", ["\x00"])
        return real(**kwargs)

    monkeypatch.setattr(ingest, "message_receive", message_receive)


@pytest.fixture
def alerts_run_inline(monkeypatch):
    monkeypatch.setattr(tasks.email_quarantine_alert_task, "delay", lambda *a: tasks.email_quarantine_alert_task(*a))


def test_poison_between_two_good_emails_is_quarantined_and_the_mailbox_moves_on(
    imap_mailbox,
    imap_server,
    poison,
    clinic_admin,
    alerts_run_inline,
    django_capture_on_commit_callbacks,
):
    good1, bad, good2 = (
        _message("First question", "good-1@mail.example.com"),
        _message("POISON chest pain", "poison-1@mail.example.com"),
        _message("Chest pain, please call me", "good-2@mail.example.com"),
    )
    imap_server.append(good1, bad, good2)
    with django_capture_on_commit_callbacks(execute=True):
        result = mailbox_poll(mailbox_id=imap_mailbox.pk)
    assert result.error == ""
    assert list(result.outcomes.values()) == ["accepted", "quarantined", "accepted"]
    imap_mailbox.refresh_from_db()
    assert imap_mailbox.last_uid == max(result.outcomes)  # the watermark moved past the poison
    texts = list(
        ChannelMessage.objects.filter(channel="email", direction="inbound")
        .order_by("id")
        .values_list("body", flat=True)
    )
    assert len(texts) == 2 and "Chest pain" in texts[1]
    row = InboundEmail.objects.get(status=InboundEmail.Status.QUARANTINED)
    assert row.tenant_id == imap_mailbox.tenant_id and row.imap_uid == list(result.outcomes)[1]
    assert row.reason.startswith("DataError") and row.message_id == "<poison-1@mail.example.com>"
    with default_storage.open(row.raw_path) as stored:
        assert b"POISON chest pain" in stored.read()  # the original, kept
    assert row.alerted_at is not None
    assert [m.to for m in mail.outbox] == [["admin@sunrise.example"]]
    assert "quarantined" in mail.outbox[0].subject and "chest" not in mail.outbox[0].body.lower()
    # a later poll does not see it again, and the alert is not sent twice
    with django_capture_on_commit_callbacks(execute=True):
        assert mailbox_poll(mailbox_id=imap_mailbox.pk).outcomes == {}
    assert tasks.email_quarantine_alert_task(str(row.pk)) is None and len(mail.outbox) == 1


def test_quarantined_emails_are_listed_in_admin_with_their_reason(tenant, admin_client, poison):
    from channels_app.email.quarantine import email_ingest_or_quarantine

    EmailMailbox.objects.create(tenant=tenant, address=CLINIC)
    row = email_ingest_or_quarantine(raw=_message("POISON", "poison-2@mail.example.com"), source="raw").email
    page = admin_client.get("/admin/channels_app/inboundemail/?status__exact=quarantined").content.decode()
    assert str(row.pk) in page and "DataError" in page


def test_nul_email_between_two_good_ones_is_stored_replaced_and_kept_raw(imap_mailbox, imap_server):
    imap_server.append(_message("First", "g-1@mail.example.com"), NUL_EMAIL, _message("Third", "g-3@mail.example.com"))
    result = mailbox_poll(mailbox_id=imap_mailbox.pk)
    assert list(result.outcomes.values()) == ["accepted"] * 3
    row = InboundEmail.objects.get(message_id="<nul-1@mail.example.com>")
    assert row.subject == "chest\ufffdpain" and "chest\ufffd pain" in row.text
    assert "chest\ufffd pain" in row.channel_message.body
    with default_storage.open(row.raw_path) as stored:
        assert b"chest=00 pain" in stored.read()


def _basic(secret: str) -> str:
    return "Basic " + base64.b64encode(secret.encode()).decode()


def test_raw_endpoint_nul_poison_and_size(tenant, client, settings, poison):
    EmailMailbox.objects.create(tenant=tenant, address=CLINIC)
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}

    def post(body: bytes):
        return client.post("/email/inbound/", body, content_type="message/rfc822", HTTP_AUTHORIZATION=_basic(SECRET))

    nul = post(NUL_EMAIL.replace(b"nul-1@", b"nul-raw@"))
    assert nul.status_code == 200 and nul.json()["status"] == "accepted"
    assert post(_message("POISON", "poison-3@mail.example.com")).json()["status"] == "quarantined"
    # the README's 10 MiB, not Django's 2.5 MB upload default
    big = _message("A long letter. " + "x" * (5 * 1024 * 1024), "big-1@mail.example.com")
    assert post(big).json()["status"] == "accepted"
    too_big = _message("x" * (10 * 1024 * 1024 + 1), "big-2@mail.example.com")
    assert post(too_big).status_code == 413
