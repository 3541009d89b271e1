"""Transfer to the front desk: opening hours made deterministic and Twilio's <Dial action> callback."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from channels_app import twilio_payloads
from conversations.models import AgentSettings
from tests.voice.phone import CALLER, CLINIC, Phone, path_of

FRONT_DESK = "+14155550100"


ASK_FOR_A_PERSON = "Can I talk to a receptionist please?"


DIAL_CALL_SID = "CA" + "d" * 32


WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def zone_where_it_is_noon() -> str:
    """A fixed-offset IANA zone whose local hour is 12 right now (``Etc/GMT-N`` is UTC+N)."""
    offset = 12 - datetime.now(UTC).hour  # -11 … +12, all of which exist as Etc/GMT zones
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def agent_settings(tenant, *, bookable_hours: dict, handoff_number: str) -> None:
    AgentSettings.objects.update_or_create(
        tenant=tenant, defaults={"bookable_hours": bookable_hours, "handoff_number": handoff_number}
    )


def dial_result_params(tenant, phone: Phone, status: str, duration: int | None = None) -> dict[str, str]:
    """What Twilio posts to a ``<Dial action>``: the parent call's parameters plus ``DialCallStatus``,
    ``DialCallSid``, ``DialCallDuration`` and ``DialBridged`` (https://www.twilio.com/docs/voice/twiml/dial#action)."""
    params = twilio_payloads.gather_speech(
        account_sid=tenant.twilio_account_sid, call_sid=phone.sid, from_=CALLER, to=CLINIC, speech=""
    )
    params.update(
        {
            "DialCallStatus": status,
            "DialCallSid": DIAL_CALL_SID,
            "DialBridged": "true" if status in ("completed", "answered") else "false",
        }
    )
    if duration is not None:
        params["DialCallDuration"] = str(duration)
    return params


def post_dial_result(phone: Phone, tenant, status: str, duration: int | None = None) -> str:
    """Follow the ``<Dial action>`` of the last TwiML with ``status``; returns the TwiML answered (now
    ``phone.last``)."""
    dial = phone.last.find("Dial")
    assert dial is not None, "the last TwiML has no <Dial>"
    response = phone.post(
        path_of(dial.get("action")), dial_result_params(tenant, phone, status, duration), tenant=tenant
    )
    phone.last = ET.fromstring(response.content)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    return response.content.decode()
