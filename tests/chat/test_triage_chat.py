"""Triage in the chat widget over a real websocket (daphne): an emergency — even in a message that also gives
a phone number — is answered with the safety reply at once, never the booking menu, and raises one incident
after hours."""

from __future__ import annotations

import pytest

from conversations.models import Interaction
from escalation.models import EscalationSettings, Incident
from tests.escalation.conftest import build_oncall

pytestmark = [pytest.mark.django_db(transaction=True)]
VISITOR = "t" * 8 + "0123456789abcdef"


def test_an_emergency_typed_in_the_widget_gets_the_safety_reply_and_one_incident(tenant, ws_connect):
    build_oncall(tenant)
    EscalationSettings.objects.filter(tenant=tenant).update(escalate_in_business_hours=True)
    ws = ws_connect(tenant)
    ws.send({"type": "hello", "visitor": VISITOR})
    ws.until(lambda f: f["type"] == "reply")
    ws.send(
        {"type": "message", "id": "msg-000001", "text": "my son swallowed one of those button batteries!! 555 123 0001"}
    )
    reply = ws.until(lambda f: f["type"] == "reply")[-1]["text"]
    assert "1-800-222-1222" in reply and "book" not in reply.lower() and "code" not in reply.lower()
    ws.send({"type": "message", "id": "msg-000002", "text": "he's drooling and crying"})
    ws.until(lambda f: f["type"] == "reply")
    chat = Interaction.objects.get(channel="chat")
    assert chat.urgency == 5 and Incident.objects.filter(interaction=chat).count() == 1
