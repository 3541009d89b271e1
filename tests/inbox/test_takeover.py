"""Takeover and staff replies: the service, the AI pause on every reply path, STOP, threading, the API."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from channels_app import twilio_payloads
from channels_app.chat.services import ChatSession, chat_message
from channels_app.chat.visitors import visitor_key
from channels_app.email.ingest import email_ingest
from channels_app.email.outbound import email_deliver
from channels_app.email.triage import email_triage
from channels_app.models import InboundEmail
from channels_app.sms.replies import sms_reply
from channels_app.sms.services import sms_deliver
from conversations.agent.services import handoff_request
from conversations.api.services import api_key_create
from conversations.inbox.models import ConversationHandling, Takeover
from conversations.inbox.outbox import ChannelUnavailable
from conversations.inbox.services import conversation_release, conversation_take_over, staff_message_send
from conversations.models import AgentSettings, ChannelMessage, Conversation, Interaction
from conversations.selectors import ai_paused
from identity.models import CustomerIdentifier, TenantMembership
from identity.services import customer_resolve, phone_set_opt_out
from providers.sms import LocmemSmsBackend
from tests.email.conftest import PATIENT_EMAIL, plain

pytestmark = pytest.mark.django_db

PATIENT = "+15551230001"


@pytest.fixture
def staff(tenant):
    user = get_user_model().objects.create_user("anna", password="pw", first_name="Anna", is_staff=True)
    TenantMembership.objects.create(user=user, tenant=tenant)
    return user


def _sms_in(tenant, twilio_post, body):
    params = twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid, from_=PATIENT, to="+15550100001", body=body
    )
    assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200
    return ChannelMessage.objects.get(provider_id=params["MessageSid"])


def _conversation() -> Conversation:
    return Conversation.objects.get(status="open")


def test_staff_sms_is_a_staff_turn_and_pauses_the_ai(tenant, staff, twilio_post, django_capture_on_commit_callbacks):
    _sms_in(tenant, twilio_post, "Can I talk to a real person please?")
    conversation = _conversation()
    sent = staff_message_send(conversation=conversation, user=staff, body="Hi, this is Anna. How can I help?")
    assert sent.channel == "sms"
    assert sent.turn["role"] == "staff" and sent.turn["staff_user_id"] == staff.pk
    assert sent.turn["text"] == "Hi, this is Anna. How can I help?"
    sms_deliver(message_id=sent.message.pk)
    assert [m["to"] for m in LocmemSmsBackend.outbox] == [PATIENT]
    assert LocmemSmsBackend.outbox[0]["body"].startswith("Anna (")  # the patient sees the first name
    assert ai_paused(conversation.pk)
    handling = ConversationHandling.objects.get(conversation=conversation)
    assert handling.taken_over_by == staff and handling.assignee == staff

    # the patient's next SMS gets no AI reply while staff hold the conversation
    LocmemSmsBackend.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):  # customer_message_received → the inbox
        inbound = _sms_in(tenant, twilio_post, "I need to move my appointment")
    assert sms_reply(inbound_id=inbound.pk) is None
    assert not ChannelMessage.objects.filter(idempotency_key=f"reply:{inbound.provider_id}").exists()
    assert ConversationHandling.objects.get(conversation=conversation).customer_waiting_since is not None

    # Return to AI: the next message is answered; the one sent during the takeover never is
    assert conversation_release(conversation=conversation, user=staff)
    assert not ai_paused(conversation.pk)
    assert sms_reply(inbound_id=inbound.pk) is None
    after = _sms_in(tenant, twilio_post, "Hello again")
    assert sms_reply(inbound_id=after.pk) is not None
    assert [m["to"] for m in LocmemSmsBackend.outbox] == [PATIENT]


def test_stop_is_respected(tenant, staff, twilio_post):
    _sms_in(tenant, twilio_post, "Hello")
    conversation = _conversation()
    _sms_in(tenant, twilio_post, "STOP")
    with pytest.raises(ChannelUnavailable) as refused:
        staff_message_send(conversation=conversation, user=staff, body="Are you there?", channel="sms")
    assert refused.value.code == "opted_out"
    assert not ChannelMessage.objects.filter(direction="outbound", idempotency_key__startswith="staff:").exists()


def test_stop_between_send_and_delivery_suppresses(tenant, staff, twilio_post):
    _sms_in(tenant, twilio_post, "Hello")
    sent = staff_message_send(conversation=_conversation(), user=staff, body="Hi there")
    phone_set_opt_out(tenant=tenant, phone=PATIENT, opted_out=True)
    assert sms_deliver(message_id=sent.message.pk).status == "suppressed"
    assert LocmemSmsBackend.outbox == []


def test_idle_takeover_lapses_per_tenant_setting(tenant, staff, twilio_post):
    AgentSettings.objects.create(tenant=tenant, takeover_idle_minutes=10)
    _sms_in(tenant, twilio_post, "Hello")
    conversation = _conversation()
    start = timezone.now() - timedelta(minutes=30)
    conversation_take_over(conversation=conversation, user=staff, at=start)
    assert ai_paused(conversation.pk, at=start + timedelta(minutes=5))
    assert not ai_paused(conversation.pk)  # 30 minutes later: lapsed after 10 idle minutes
    again = conversation_take_over(conversation=conversation, user=staff)  # a new takeover closes the lapsed one
    assert Takeover.objects.filter(conversation=conversation).count() == 2 and ai_paused(conversation.pk)
    assert again.paused_until - again.started_at == timedelta(minutes=10)


def test_agent_handoff_flags_needs_human(tenant, twilio_post):
    _sms_in(tenant, twilio_post, "Hello")
    interaction = Interaction.objects.get()
    handoff_request(interaction=interaction, reason="The patient asked for a person.")
    handling = ConversationHandling.objects.get(conversation=interaction.conversation)
    assert handling.needs_human and handling.needs_human_since is not None


def test_chat_staff_message_and_no_ai_reply_while_taken_over(tenant, staff):
    visitor = "v" * 20
    session = ChatSession(tenant=tenant, visitor_key=visitor_key(visitor))
    frames = chat_message(session=session, client_id="msg-00001", text="Hello")
    assert [f["type"] for f in frames] == ["message", "reply"]
    conversation = session.interaction.conversation
    sent = staff_message_send(conversation=conversation, user=staff, body="Anna here")
    assert sent.channel == "chat" and sent.turn["role"] == "staff"
    frames = chat_message(session=session, client_id="msg-00002", text="Thanks Anna")
    assert [f["type"] for f in frames] == ["message"]  # no AI reply
    conversation_release(conversation=conversation, user=staff)
    frames = chat_message(session=session, client_id="msg-00003", text="Book me please")
    assert [f["type"] for f in frames] == ["message", "reply"]
    assert frames[1]["role"] == "agent"


def test_email_staff_reply_is_threaded_and_triage_stays_silent(tenant, staff, mailbox):
    customer_resolve(tenant=tenant, email=PATIENT_EMAIL, display_name="Jane Doe", verified_kinds=("email",))
    first = email_ingest(raw=plain(body="Do you take new patients?").as_bytes(), source=InboundEmail.Source.WEBHOOK)
    inbound = first.email
    conversation = inbound.interaction.conversation
    sent = staff_message_send(conversation=conversation, user=staff, body="Yes we do!", channel="email")
    assert sent.turn["role"] == "staff" and sent.turn["staff_user_id"] == staff.pk
    email_deliver(message_id=sent.message.pk)
    wire = message_from_bytes(mail.outbox[-1].message().as_bytes(), policy=policy.default)
    assert wire["To"] == PATIENT_EMAIL and wire["In-Reply-To"] == inbound.message_id
    assert inbound.message_id in wire["References"]
    assert "Yes we do!" in wire.get_content()
    # the AI does not answer the email that came in while staff held the conversation
    second = email_ingest(
        raw=plain(body="Great, what do I bring?", subject="Re: Question").as_bytes(),
        source=InboundEmail.Source.WEBHOOK,
    )
    assert email_triage(inbound_id=second.email.pk).decision == "staff"


# --- API -----------------------------------------------------------------------------------------------------


def _key(tenant, scopes=None):
    return api_key_create(tenant=tenant, name="t", scopes=scopes)[1]


def test_api_send_list_release(client, tenant, twilio_post):
    _sms_in(tenant, twilio_post, "Hello")
    conversation = _conversation()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {_key(tenant)}"}
    url = f"/api/v1/conversations/{conversation.pk}/messages/"
    response = client.post(url, {"body": "Hi from the front desk"}, content_type="application/json", **auth)
    assert response.status_code == 201, response.content
    assert response.json()["channel"] == "sms" and response.json()["turn"]["role"] == "staff"
    assert ai_paused(conversation.pk)
    turns = client.get(url, **auth).json()
    assert [(t["role"], t["text"]) for t in turns][-1] == ("staff", "Hi from the front desk")
    release = client.post(f"/api/v1/conversations/{conversation.pk}/release/", **auth)
    assert release.status_code == 200 and release.json() == {"released": True}
    assert not ai_paused(conversation.pk)


def test_api_stop_is_409(client, tenant, twilio_post):
    _sms_in(tenant, twilio_post, "Hello")
    _sms_in(tenant, twilio_post, "STOP")
    conversation = _conversation()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {_key(tenant)}"}
    response = client.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"body": "Hi", "channel": "sms"},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 409 and response.json()["code"] == "opted_out"


def test_api_cross_tenant_is_404_and_scope_is_checked(client, tenant, other_tenant, twilio_post):
    _sms_in(tenant, twilio_post, "Hello")
    conversation = _conversation()
    other = {"HTTP_AUTHORIZATION": f"Bearer {_key(other_tenant)}"}
    base = f"/api/v1/conversations/{conversation.pk}"
    assert client.get(f"{base}/messages/", **other).status_code == 404
    post = client.post(f"{base}/messages/", {"body": "x"}, content_type="application/json", **other)
    assert post.status_code == 404
    assert client.post(f"{base}/release/", **other).status_code == 404
    read_only = {"HTTP_AUTHORIZATION": f"Bearer {_key(tenant, scopes=['conversations:read'])}"}
    assert client.get(f"{base}/messages/", **read_only).status_code == 200
    denied = client.post(f"{base}/messages/", {"body": "x"}, content_type="application/json", **read_only)
    assert denied.status_code == 403
    assert not ChannelMessage.objects.filter(idempotency_key__startswith="staff:").exists()
    assert CustomerIdentifier.objects.filter(tenant=tenant).exists()


def test_demo_key_gains_every_scope_on_reseed(tenant):
    from conversations.api.models import ApiKey, ApiScope
    from conversations.demo import demo_api_key, seed

    raw = demo_api_key(tenant)
    api_key_create(tenant=tenant, name="old demo", raw_key=raw, scopes=["interactions:read"])
    seed(tenant)
    assert sorted(ApiKey.objects.get(tenant=tenant).scopes) == sorted(ApiScope.values)
    assert "conversations:write" in ApiScope.values


def test_voice_turn_gets_no_ai_answer_while_taken_over(tenant, staff, twilio_post, open_all_day):
    from tests.voice.phone import Phone

    phone = Phone(twilio_post, tenant)
    phone.answer()
    conversation = _conversation()
    conversation_take_over(conversation=conversation, user=staff)
    phone.say("I'd like to book an appointment for Tuesday")
    row = Interaction.objects.get(channel="voice")
    assert row.transcript[-2]["role"] == "customer"
    assert row.transcript[-1]["event"] != "reply"  # the engine was not asked; the caller is told goodbye
