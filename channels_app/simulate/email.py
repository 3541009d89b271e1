"""``simulate email``: a real RFC 5322 message POSTed to the running server's ``/email/inbound/``, then the reply.

The message is built with Python's ``email`` package like a mail client would: From, To (the tenant's
mailbox), Subject, Date, Message-ID. ``--reply`` answers the last email the server sent to ``--from`` the way
Gmail does: To its ``Reply-To`` (the conversation's plus-address), ``In-Reply-To`` / ``References`` set, the
original quoted below "On … wrote:". Authenticated with ``ANYMAIL["WEBHOOK_SECRET"]`` (HTTP basic auth).
"""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import httpx
from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from channels_app.email.threading import tenant_mailbox
from channels_app.models import OutboundEmail


def add_arguments(parser) -> None:
    parser.add_argument("--from", dest="from_", required=True, help="sender address, e.g. jane@example.com")
    parser.add_argument("--body", required=True)
    parser.add_argument("--subject", default="Question")
    parser.add_argument("--reply", action="store_true", help="reply to the last email sent to --from")
    parser.add_argument(
        "--wait",
        type=float,
        default=15.0,
        help="seconds to wait for the reply (with --reply, first for an email still on its way)",
    )


def _last_sent(tenant, recipient: str, wait: float) -> OutboundEmail | None:
    """The newest email sent (or delivered) to ``recipient`` (lower-cased address), or None. While the newest
    email to them is still on its way (pending: the worker is handing it to the mail server, and the file or
    console backend may already show it), waits for it up to ``wait`` seconds, as the patient waits for it to
    arrive; so a reply answers the newest email, never the one before it."""
    emails = OutboundEmail.objects.filter(
        channel_message__tenant=tenant, channel_message__recipient=recipient
    ).select_related("channel_message")
    deadline = time.monotonic() + wait
    while True:
        newest = emails.exclude(channel_message__status="failed").order_by("-created_at").first()
        on_its_way = newest is not None and newest.channel_message.status == "pending"
        if not on_its_way or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    return emails.filter(channel_message__status__in=["sent", "delivered"]).order_by("-created_at").first()


def build(*, tenant, sender: str, body: str, subject: str, reply: bool, wait: float = 0.0) -> EmailMessage:
    """The message to post (a reply to the last email sent to ``sender`` when ``reply``; an email still on its
    way to them is waited for up to ``wait`` seconds)."""
    mailbox = tenant_mailbox(tenant)
    if mailbox is None:
        raise CommandError(f"tenant {tenant.slug} has no email mailbox; run `python manage.py seed_demo`")
    msg = EmailMessage()
    # Playing the clinic's receiving MTA: it vouches for the sender's domain (RFC 8601), as a real one does for
    # DKIM/DMARC-passing mail; without it the sender is unconfirmed and no booking is changed.
    authserv_id = next(iter(settings.EMAIL_TRUSTED_AUTHSERV_IDS), "callsphere.local")
    domain = sender.rpartition("@")[2]
    msg["Authentication-Results"] = f"{authserv_id}; dkim=pass header.d={domain}; dmarc=pass header.from={domain}"
    msg["From"], msg["Date"] = sender, format_datetime(timezone.now())
    msg["Message-ID"] = make_msgid(domain="simulate.callsphere.localhost")
    if not reply:
        msg["To"], msg["Subject"] = mailbox.address, subject
        msg.set_content(body)
        return msg
    last = _last_sent(tenant, sender.lower(), wait)
    if last is None:
        raise CommandError(f"no email was sent to {sender} yet; book an appointment first (confirmation)")
    msg["To"], msg["Subject"] = last.reply_to, "Re: " + last.subject.removeprefix("Re: ")
    msg["In-Reply-To"] = last.message_id
    msg["References"] = f"{last.references} {last.message_id}".strip()
    quoted = "\n".join(f"> {line}" for line in last.channel_message.body.splitlines())
    when = last.created_at.strftime("%a, %b %-d, %Y at %-I:%M %p")
    msg.set_content(f"{body}\n\nOn {when} {last.from_header} wrote:\n{quoted}\n")
    return msg


def run(command, tenant, to: str, server: str, options) -> None:
    msg = build(
        tenant=tenant,
        sender=options["from_"],
        body=options["body"],
        subject=options["subject"],
        reply=options["reply"],
        wait=options["wait"],
    )
    secret = settings.ANYMAIL.get("WEBHOOK_SECRET", "")
    if not secret:
        raise CommandError("set ANYMAIL_WEBHOOK_SECRET (user:password), the same value the server uses")
    user, _, password = (secret[0] if isinstance(secret, list) else secret).partition(":")
    response = httpx.post(
        server.rstrip("/") + "/email/inbound/",
        content=msg.as_bytes(),
        auth=(user, password),
        headers={"Content-Type": "message/rfc822"},
        timeout=15,
    )
    command.stdout.write(f"POST /email/inbound/ → {response.status_code} {response.text}")
    if response.status_code != 200:
        raise CommandError(response.text)
    deadline = time.monotonic() + options["wait"]
    while time.monotonic() < deadline:
        answer = (
            OutboundEmail.objects.filter(in_reply_to=msg["Message-ID"])
            .exclude(channel_message__status="pending")
            .select_related("channel_message")
            .first()
        )
        if answer:
            command.stdout.write(
                f"reply ({answer.channel_message.status}, {answer.message_id}) "
                f"Subject: {answer.subject}\n{answer.channel_message.body}"
            )
            return
        time.sleep(0.2)
    command.stdout.write("no reply yet — is the worker running? (make run starts it)")
