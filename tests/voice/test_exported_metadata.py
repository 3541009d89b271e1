"""``call_logs.metadata`` is exported (API, CSV/NDJSON, webhooks, warehouse): it carries channel facts only. The
channels' in-flight state (voice turn markers, SMS reply reservations, transfer progress, the agent's identity
check and its stashed message) lives in ``workflow``, which no export carries."""

from __future__ import annotations

import pytest

from channels_app import twilio_payloads
from channels_app.sms.replies import sms_reply
from conversations.api.serializers import INTERACTION_FIELDS, InteractionSerializer
from conversations.models import ChannelMessage, Interaction
from tests.voice.handoff import ASK_FOR_A_PERSON, post_dial_result

#: Keys a workflow step once wrote into ``metadata``.
WORKFLOW_KEYS = {
    "turn_in_progress",
    "turns_heard",
    "transfer",
    "sms_reply_reservations",
    "identity",
    "identity_pending_text",
    "identity_unconfirmed",
}
#: Every key the SMS and voice paths below may leave in ``metadata``: provider ids, statuses, how the call ended.
CHANNEL_FACTS = {"messages", "call_sid", "call_status", "duration_seconds", "call_ended_at", "ended_by"}


@pytest.mark.django_db
def test_sms_and_call_workflows_leave_only_channel_facts_in_the_exported_metadata(phone, tenant, open_now):
    params = twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid, from_="+15551230007", to="+15550100001", body="hey can i book a cleaning"
    )
    phone.post("/twilio/sms/", params, tenant=tenant)
    sms_reply(inbound_id=ChannelMessage.objects.get(direction="inbound", channel="sms").pk)

    phone.answer()
    phone.say("Hi, this is Ana, I need to move my appointment")
    phone.say(ASK_FOR_A_PERSON)  # the transfer's progress is workflow state
    post_dial_result(phone, tenant, "completed", duration=42)
    phone.status("completed", duration=60)

    rows = list(Interaction.objects.all())
    assert {row.channel for row in rows} == {"sms", "voice"}
    call = next(row for row in rows if row.channel == "voice")
    assert call.workflow["transfer"]["status"] == "transferred" and call.workflow["turns_heard"] == 2
    assert call.metadata["ended_by"] == "transfer"
    assert "workflow" not in INTERACTION_FIELDS
    for row in rows:
        exported = InteractionSerializer(row).data["metadata"]
        assert not WORKFLOW_KEYS & set(exported), (row.channel, sorted(exported))
        assert set(exported) <= CHANNEL_FACTS, (row.channel, sorted(set(exported) - CHANNEL_FACTS))
