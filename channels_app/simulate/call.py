"""``simulate call``: a phone call exactly as Twilio drives it, signed — the incoming-call webhook, one speech
result per ``--say`` line (posted to the Gather action of the TwiML the server answered), and the final status
callback — printing what the agent says, so the flow can be heard without Twilio. Then, for up to ``--wait``
seconds, it prints the texts the clinic sends the caller (the booking confirmation, a chat link the caller asked
for), read from the server's database as the caller's phone would show them — a development aid, like the
code ``simulate chat --phone`` reads."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from channels_app import twilio_payloads
from channels_app.simulate.base import signed_post


def add_arguments(parser) -> None:
    parser.add_argument("--from", dest="from_", required=True, help="caller, E.164 (e.g. +15551230000)")
    parser.add_argument("--say", action="append", default=[], help="one caller turn (repeat for more turns)")
    parser.add_argument("--end", default="completed", help="final call status (completed, busy, no-answer…)")
    parser.add_argument(
        "--wait", type=float, default=8.0, help="seconds to wait for texts sent to the caller after the call (0: none)"
    )


def _post(command, tenant, server: str, path: str, params: dict) -> ET.Element | None:
    response = signed_post(server=server, path=path, params=params, auth_token=tenant.twilio_auth_token)
    command.stdout.write(f"POST {path} → {response.status_code}")
    if response.status_code >= 300:
        raise CommandError(response.text)
    if not response.headers.get("content-type", "").startswith("text/xml"):
        return None
    document = ET.fromstring(response.text)
    for say in document.iter("Say"):
        command.stdout.write(f"  agent: {say.text}")
    if document.find("Record") is not None:
        command.stdout.write("  (recording a voicemail)")
    if document.find("Hangup") is not None:
        command.stdout.write("  (agent hung up)")
    return document


def _path(url: str) -> str:
    return url[len(settings.PUBLIC_BASE_URL) :] if url.startswith(settings.PUBLIC_BASE_URL) else url


def run(command, tenant, to: str, server: str, options) -> None:
    account, caller = tenant.twilio_account_sid, options["from_"]
    started, since = time.monotonic(), timezone.now()
    params = twilio_payloads.inbound_call(account_sid=account, from_=caller, to=to)
    sid = params["CallSid"]
    command.stdout.write(f"call {sid}: {caller} → {to}")
    document = _post(command, tenant, server, "/twilio/voice/", params)
    for line in options["say"]:
        gather = document.find("Gather") if document is not None else None
        if gather is None:
            command.stdout.write("  (no one is listening any more; remaining lines not sent)")
            break
        command.stdout.write(f"  caller: {line}")
        speech = twilio_payloads.gather_speech(account_sid=account, call_sid=sid, from_=caller, to=to, speech=line)
        document = _post(command, tenant, server, _path(gather.get("action")), speech)
    status = twilio_payloads.call_status(
        account_sid=account,
        call_sid=sid,
        from_=caller,
        to=to,
        status=options["end"],
        duration=max(1, round(time.monotonic() - started)),
        sequence=1,
    )
    _post(command, tenant, server, "/twilio/voice/status/", status)
    _print_texts(command, tenant, caller, since, options["wait"])


def _print_texts(command, tenant, caller: str, since, wait: float) -> None:
    """Print each outbound SMS to ``caller`` (E.164) created since ``since`` (UTC) as it appears, for up to
    ``wait`` seconds; stops early once a chat link has been texted (the one thing the caller waits for)."""
    from conversations.models import ChannelMessage

    shown: set = set()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        texts = ChannelMessage.objects.filter(
            tenant=tenant, channel="sms", direction="outbound", recipient=caller, created_at__gte=since
        ).exclude(pk__in=shown)
        for text in texts.order_by("created_at", "pk"):
            shown.add(text.pk)
            command.stdout.write(f"  texted to {caller}: {text.body}")
            if text.idempotency_key.startswith("chat-link:"):
                return
        time.sleep(0.2)
