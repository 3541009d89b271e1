"""One test per guard: auto-reply loops, duplicates, bad input, emergencies, hostile HTML, webhook auth."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import override_settings

from channels_app.email.ingest import email_ingest
from channels_app.email.outbound import email_deliver
from channels_app.email.triage import email_triage
from channels_app.models import InboundEmail, OutboundEmail
from conversations.models import ChannelMessage, Interaction, StaffNotification
from escalation.models import EscalationSettings, Incident
from tests.email.conftest import CLINIC, PATIENT_EMAIL, plain
from tests.email.ingesting import ingest_message

pytestmark = pytest.mark.django_db
SECRET = "inbound:s3cret-Pa55"


@pytest.mark.parametrize(
    "headers,sender",
    [
        ({"Auto-Submitted": "auto-replied"}, None),
        ({"Precedence": "bulk"}, None),
        ({"Precedence": "junk"}, None),
        ({"Precedence": "list"}, None),
        ({"X-Autoreply": "yes"}, None),
        ({"List-Id": "<news.example.com>"}, None),
        ({}, "MAILER-DAEMON@mx.example.com"),
        ({"Return-Path": "<>"}, None),
    ],
)
def test_auto_replies_are_recorded_but_never_answered(
    tenant, mailbox, patient, headers, sender, django_capture_on_commit_callbacks
):
    msg = plain(
        body="I am out of the office until Monday.",
        subject="Out of office",
        headers=headers,
        **({"sender": sender} if sender else {}),
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = ingest_message(msg)
    assert result.status == "ignored" and result.reason
    assert callbacks == []  # no triage queued, no customer turn announced
    assert not ChannelMessage.objects.filter(channel="email").exists()
    assert email_triage(inbound_id=result.email.pk).decision == "skipped"
    assert not OutboundEmail.objects.exists()


def test_bounce_dsn_is_ignored_and_marks_our_message_undelivered(tenant, mailbox, patient):
    first = ingest_message(plain(body="Hi, can I book?"))
    email_triage(inbound_id=first.email.pk)
    sent = email_deliver(message_id=ChannelMessage.objects.get(channel="email", direction="outbound").pk)
    # A Postfix-style DSN (RFC 3464): human part, machine-readable status, the returned headers.
    report = (
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n"
        f"To: {CLINIC}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.example.com>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {PATIENT_EMAIL}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {sent.provider_id}\r\n"
        "Subject: Re: Question\r\n\r\n--B--\r\n"
    ).encode()
    result = ingest_message(report)
    assert result.status == "ignored" and result.reason.startswith("Auto-Submitted")
    sent.refresh_from_db()
    assert sent.status == "undelivered"
    assert OutboundEmail.objects.count() == 1  # nothing answered the bounce


def test_our_replies_carry_auto_submitted_and_our_own_mail_looping_back_is_ignored(tenant, mailbox, patient):
    result = ingest_message(plain(body="What are your opening hours?"))
    email_triage(inbound_id=result.email.pk)
    email_deliver(message_id=ChannelMessage.objects.get(channel="email", direction="outbound").pk)
    ours = mail.outbox[0].message()
    assert ours["Auto-Submitted"] == "auto-replied" and ours["X-Auto-Response-Suppress"] == "All"
    looped = ingest_message(ours.as_bytes())
    assert looped.status == "ignored" and looped.reason == "loop: sent by us"
    assert OutboundEmail.objects.count() == 1


def test_duplicate_message_id_is_one_turn(tenant, mailbox, patient, django_capture_on_commit_callbacks):
    msg = plain(body="Can I book a cleaning next week?")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = ingest_message(msg)
        again = ingest_message(msg)  # IMAP after a restart, or the ESP retrying the webhook
        via_imap = email_ingest(raw=msg.as_bytes(), source="imap", mailbox=mailbox)
    assert not first.duplicate and again.duplicate and via_imap.duplicate
    assert again.email.pk == first.email.pk == via_imap.email.pk
    assert InboundEmail.objects.count() == 1
    assert ChannelMessage.objects.filter(channel="email", direction="inbound").count() == 1
    assert len(first.email.interaction.transcript) == 1
    # customer_message_received, triage and the conversation's activity bump, for the first delivery only
    assert len(callbacks) == 3
    email_triage(inbound_id=first.email.pk)
    assert email_triage(inbound_id=first.email.pk).decision == "skipped"
    assert OutboundEmail.objects.count() == 1


def test_oversize_and_malformed_are_rejected_with_a_reason(tenant, mailbox):
    with override_settings(EMAIL_INBOUND_MAX_BYTES=2000):
        big = ingest_message(plain(body="x" * 5000))
    assert big.status == "rejected" and big.reason.startswith("oversize")
    no_sender = ingest_message(b"Subject: hi\r\nTo: frontdesk@sunrise.example\r\n\r\nbody\r\n")
    assert no_sender.status == "rejected" and no_sender.reason.startswith("malformed")
    garbage = ingest_message(b"\x00\xff\xfe" * 50)
    assert garbage.status == "rejected"
    nowhere = ingest_message(plain(body="hello", to="someone@unrelated.example"))
    assert nowhere.status == "rejected" and nowhere.reason == "no tenant for the recipients"
    assert not ChannelMessage.objects.exists()


def test_attachments_are_metadata_on_storage_never_in_the_transcript(tenant, mailbox, patient, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    msg = plain(body="My insurance card is attached.")
    msg.add_attachment(b"%PDF-1.4 fake card", maintype="application", subtype="pdf", filename="card.pdf")
    result = ingest_message(msg)
    attachment = result.email.attachments.get()
    assert (attachment.filename, attachment.content_type, attachment.size) == ("card.pdf", "application/pdf", 18)
    assert (tmp_path / attachment.storage_path).read_bytes() == b"%PDF-1.4 fake card"
    turn = result.email.interaction.transcript[-1]
    assert turn["text"] == "My insurance card is attached."
    assert turn["attachments"] == [{"filename": "card.pdf", "content_type": "application/pdf", "size": 18}]
    assert "PDF-1.4" not in str(result.email.interaction.transcript)


@pytest.mark.parametrize("business_hours,expected", [({}, 1), ({str(d): [["00:00", "00:00"]] for d in range(1, 8)}, 0)])
def test_urgent_email_after_hours_raises_exactly_one_incident(
    tenant, mailbox, patient, business_hours, expected, django_capture_on_commit_callbacks
):
    EscalationSettings.objects.create(tenant=tenant, business_hours=business_hours, escalate_in_business_hours=False)
    msg = plain(body="My father collapsed and is not responding, please help", subject="Help")
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest_message(msg)
        ingest_message(msg)  # a redelivery
    with django_capture_on_commit_callbacks(execute=True):
        outcome = email_triage(inbound_id=result.email.pk)
        email_triage(inbound_id=result.email.pk)
    assert outcome.decision == "escalated" and outcome.urgency == 5
    assert Incident.objects.filter(interaction=result.email.interaction).count() == expected
    assert Incident.objects.count() == expected
    assert StaffNotification.objects.filter(interaction=result.email.interaction, kind="handoff").count() == 1
    interaction = Interaction.objects.get(pk=result.email.interaction_id)
    assert interaction.urgency == 5 and interaction.escalated
    reply = ChannelMessage.objects.get(channel="email", direction="outbound")
    assert "911" in reply.body and "father" not in reply.body


def test_malicious_html_is_inert_in_admin(tenant, mailbox, patient, client):
    msg = plain(body="see html")
    msg.add_alternative(
        '<p>Hi <b>there</b></p><script>alert("pwned")</script>'
        '<img src="x" onerror="alert(1)"><a href="javascript:alert(2)" onclick="steal()">click</a>'
        '<iframe src="https://evil.example"></iframe><style>body{display:none}</style>',
        subtype="html",
    )
    result = ingest_message(msg)
    stored = result.email.html
    for bad in ("<script", "onerror", "javascript:", "<iframe", "onclick", "<img", "<style"):
        assert bad not in stored.lower()
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    page = client.get(f"/admin/channels_app/inboundemail/{result.email.pk}/change/").content.decode()
    assert "&lt;p&gt;Hi &lt;b&gt;there&lt;/b&gt;&lt;/p&gt;" in page  # shown as escaped source
    for bad in ('alert("pwned")', "onerror", "javascript:alert", "<iframe", "steal()", "<p>Hi <b>there"):
        assert bad not in page


def _basic(secret: str) -> str:
    return "Basic " + base64.b64encode(secret.encode()).decode()


def test_raw_inbound_endpoint_fails_closed_and_checks_basic_auth(tenant, mailbox, patient, client, settings):
    body = plain(body="Hello from curl").as_bytes()
    post = lambda **h: client.post("/email/inbound/", body, content_type="message/rfc822", **h)  # noqa: E731
    settings.ANYMAIL = {}
    assert post(HTTP_AUTHORIZATION=_basic(SECRET)).status_code == 403
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    assert post().status_code == 403
    assert post(HTTP_AUTHORIZATION=_basic("inbound:wrong")).status_code == 403
    assert not InboundEmail.objects.exists()
    ok = post(HTTP_AUTHORIZATION=_basic(SECRET))
    assert ok.status_code == 200 and ok.json()["status"] == "accepted" and ok.json()["duplicate"] is False
    assert post(HTTP_AUTHORIZATION=_basic(SECRET)).json()["duplicate"] is True


def test_anymail_inbound_webhook_feeds_the_same_ingest(tenant, mailbox, patient, client, settings):
    """Mailgun's inbound route to ``…/mailgun/inbound_mime/`` (the full MIME in ``body-mime``), via anymail:
    anymail checks Mailgun's HMAC signature and our basic auth before the ``inbound`` signal fires."""
    key, token, timestamp = "mailgun-signing-key", "a" * 50, "1767225600"
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    msg = plain(body="Booking question via Mailgun", to=f"Sunrise <{CLINIC}>")
    form = {
        "body-mime": msg.as_string(),
        "recipient": CLINIC,
        "sender": PATIENT_EMAIL,
        "timestamp": timestamp,
        "token": token,
        "signature": signature,
    }
    url = "/email/anymail/mailgun/inbound_mime/"
    settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": key}
    assert client.post(url, form).status_code == 403  # no WEBHOOK_SECRET: fail closed
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": key}
    assert client.post(url, form, HTTP_AUTHORIZATION=_basic("x:y")).status_code == 400
    forged = {**form, "signature": "0" * 64}
    assert client.post(url, forged, HTTP_AUTHORIZATION=_basic(SECRET)).status_code == 400
    assert not InboundEmail.objects.exists()
    response = client.post(url, form, HTTP_AUTHORIZATION=_basic(SECRET))
    assert response.status_code == 200
    row = InboundEmail.objects.get()
    assert (row.source, row.status, row.message_id) == ("webhook", "accepted", msg["Message-ID"])
    assert row.interaction.customer_id == patient.pk
