"""Driving calls the way Twilio does: signed webhooks with Twilio's parameters, following the TwiML we answer."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from django.conf import settings

from channels_app import twilio_payloads

CALLER = "+15551230001"


CLINIC = "+15550100001"


def says(document: str) -> list[str]:
    """Every ``<Say>`` text of a TwiML document, in order."""
    return [node.text or "" for node in ET.fromstring(document).iter("Say")]


def path_of(url: str) -> str:
    assert url.startswith(settings.PUBLIC_BASE_URL), url
    return url[len(settings.PUBLIC_BASE_URL) :]


class Phone:
    """One call as Twilio would place it: ``answer()`` posts the incoming-call webhook, ``say(text)`` posts the
    speech result to the Gather action of the last TwiML, ``silence()`` follows its no-input redirect."""

    def __init__(self, post, tenant, *, caller: str = CALLER, call_sid: str | None = None):
        self.post, self.tenant, self.caller = post, tenant, caller
        self.sid = call_sid or twilio_payloads.new_sid("CA")
        self.last: ET.Element | None = None
        self.sequence = 0

    def _remember(self, response) -> str:
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/xml")
        document = response.content.decode()
        self.last = ET.fromstring(document)
        return document

    def answer(self) -> str:
        params = twilio_payloads.inbound_call(
            account_sid=self.tenant.twilio_account_sid, from_=self.caller, to=CLINIC, call_sid=self.sid
        )
        return self._remember(self.post("/twilio/voice/", params, tenant=self.tenant))

    def gather_action(self) -> str:
        gather = self.last.find("Gather")
        assert gather is not None, ET.tostring(self.last)
        return path_of(gather.get("action"))

    def say(self, text: str) -> str:
        params = twilio_payloads.gather_speech(
            account_sid=self.tenant.twilio_account_sid, call_sid=self.sid, from_=self.caller, to=CLINIC, speech=text
        )
        return self._remember(self.post(self.gather_action(), params, tenant=self.tenant))

    def silence(self) -> str:
        redirect = self.last.find("Redirect")
        params = twilio_payloads.gather_speech(
            account_sid=self.tenant.twilio_account_sid, call_sid=self.sid, from_=self.caller, to=CLINIC, speech=""
        )
        return self._remember(self.post(path_of(redirect.text), params, tenant=self.tenant))

    def status(self, status: str, duration: int | None = None):
        self.sequence += 1
        params = twilio_payloads.call_status(
            account_sid=self.tenant.twilio_account_sid,
            call_sid=self.sid,
            from_=self.caller,
            to=CLINIC,
            status=status,
            duration=duration,
            sequence=self.sequence,
        )
        return self.post("/twilio/voice/status/", params, tenant=self.tenant)
