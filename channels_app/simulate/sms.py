"""``simulate sms``: an inbound SMS exactly as Twilio sends it, signed, then the reply the server sent."""

from __future__ import annotations

import time

from django.core.management.base import CommandError

from channels_app import twilio_payloads
from channels_app.simulate.base import signed_post
from conversations.models import ChannelMessage


def add_arguments(parser) -> None:
    parser.add_argument("--from", dest="from_", required=True, help="sender, E.164 (e.g. +15551230000)")
    parser.add_argument("--body", required=True)
    parser.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the reply")


def run(command, tenant, to: str, server: str, options) -> None:
    params = twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid, from_=options["from_"], to=to, body=options["body"]
    )
    response = signed_post(server=server, path="/twilio/sms/", params=params, auth_token=tenant.twilio_auth_token)
    command.stdout.write(f"POST /twilio/sms/ → {response.status_code}")
    if response.status_code != 200:
        raise CommandError(response.text)
    deadline = time.monotonic() + options["wait"]
    key = f"reply:{params['MessageSid']}"
    while time.monotonic() < deadline:
        reply = ChannelMessage.objects.filter(tenant=tenant, idempotency_key=key).exclude(status="pending").first()
        if reply:
            command.stdout.write(f"reply ({reply.status}, {reply.provider_id}): {reply.body}")
            return
        time.sleep(0.1)
    command.stdout.write("no reply yet — is the worker running? (make run starts it)")
