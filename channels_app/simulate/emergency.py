"""``simulate emergency``: an urgent patient SMS, signed like Twilio's, then the escalation ladder as it runs —
every page (SMS and call) as the workers send it, with the acknowledge link you can open in a browser.

The console providers print each SMS and call in the worker's output; this command prints the audit trail
from the database. ``--ack-after N`` acknowledges through the link after N seconds (GET confirm page, then the
CSRF-protected POST), to show that everything still pending stops.
"""

from __future__ import annotations

import re
import time

import httpx
from django.conf import settings
from django.core.management.base import CommandError

from channels_app import twilio_payloads
from channels_app.simulate.base import signed_post
from conversations.models import ChannelMessage
from escalation.models import AckToken, Incident, NotificationAttempt
from escalation.services.messages import ack_link


def add_arguments(parser) -> None:
    parser.add_argument("--from", dest="from_", default="+15551230099", help="patient, E.164")
    parser.add_argument("--body", default="My husband has chest pain and is sweating, please help")
    parser.add_argument("--wait", type=float, default=90.0, help="seconds to watch the ladder")
    parser.add_argument("--ack-after", type=float, default=None, help="acknowledge by link after N seconds")


def _incident_for(tenant, sid: str, deadline: float) -> Incident | None:
    while time.monotonic() < deadline:
        message = ChannelMessage.objects.filter(tenant=tenant, provider_id=sid).first()
        if message:
            incident = Incident.objects.filter(interaction_id=message.interaction_id).first()
            if incident:
                return incident
        time.sleep(0.2)
    return None


def _ack(command, server: str, link: str) -> None:
    path = link[len(settings.PUBLIC_BASE_URL) :] if link.startswith(settings.PUBLIC_BASE_URL) else link
    with httpx.Client(base_url=server.rstrip("/"), timeout=10) as client:
        page = client.get(path)
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
        if not nonce:
            command.stdout.write(f"GET {path} → {page.status_code} (no confirm form)")
            return
        # as a phone's browser posts it after the page's Referrer-Policy: no-referrer (no cookie needed)
        response = client.post(path, data={"nonce": nonce.group(1)}, headers={"Origin": "null"})
        command.stdout.write(f"POST {path} → {response.status_code}")


def run(command, tenant, to: str, server: str, options) -> None:
    params = twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid, from_=options["from_"], to=to, body=options["body"]
    )
    response = signed_post(server=server, path="/twilio/sms/", params=params, auth_token=tenant.twilio_auth_token)
    command.stdout.write(f"POST /twilio/sms/ ({options['body']!r}) → {response.status_code}")
    if response.status_code != 200:
        raise CommandError(response.text)
    started = time.monotonic()
    incident = _incident_for(tenant, params["MessageSid"], started + 10)
    if incident is None:
        raise CommandError(
            "no incident was raised: is escalation configured (seed_demo) and is it after hours "
            "or escalate_in_business_hours set? Is the message urgent enough?"
        )
    command.stdout.write(
        f"incident {incident.pk} raised (urgency {incident.urgency}, {incident.reason}); "
        f"policy {incident.policy_snapshot.get('name')!r}"
    )
    seen: dict[int, str] = {}
    acked_by_us = False
    while time.monotonic() - started < options["wait"]:
        for a in NotificationAttempt.objects.filter(incident=incident).select_related("responder").order_by("id"):
            state = f"{a.status}/{a.provider_status or '-'}"
            first_sight = a.pk not in seen
            if seen.get(a.pk) != state:
                seen[a.pk] = state
                t = (a.sent_at or a.created_at) - incident.raised_at
                command.stdout.write(
                    f"  +{t.total_seconds():6.2f}s step {a.step_index + 1} round {a.repeat + 1} "
                    f"{a.channel:5} → {a.responder} {a.to_number}: {state} {a.provider_sid}"
                )
                token = AckToken.objects.filter(attempt=a).first()
                if token and first_sight:
                    command.stdout.write(f"           ack link: {ack_link(token)}")
                    command.stdout.write(
                        "           open it on a phone (or a 375 px browser window) as the clinician would: tap "
                        "Acknowledge, then 'Open the incident' (a code is texted) and 'Call patient'"
                    )
        incident.refresh_from_db()
        if incident.status != Incident.Status.TRIGGERED:
            break
        if options["ack_after"] is not None and not acked_by_us and time.monotonic() - started >= options["ack_after"]:
            token = AckToken.objects.filter(incident=incident).order_by("-created_at").first()
            if token:
                _ack(command, server, ack_link(token))
                acked_by_us = True
        time.sleep(0.2)
    incident.refresh_from_db()
    if incident.status == Incident.Status.ACKNOWLEDGED:
        command.stdout.write(
            f"acknowledged by {incident.acknowledged_by} via {incident.ack_via} after "
            f"{incident.time_to_ack.total_seconds():.1f}s — nothing further is sent"
        )
    elif incident.status == Incident.Status.UNACKNOWLEDGED:
        command.stdout.write("ladder exhausted without acknowledgement; the clinic's admins were alerted")
    else:
        command.stdout.write(
            f"still paging (next step at {incident.next_step_at:%H:%M:%S} UTC); is the "
            "escalation worker running? (make run starts it)"
        )
