"""POST /twilio/sms/ and /twilio/sms/status/: signatures, idempotency, sessions, opt-out, status order."""

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app import twilio_payloads
from channels_app.sms.replies import sms_reply
from channels_app.sms.services import sms_send
from conversations.models import ChannelMessage, Conversation, Interaction
from identity.models import CustomerIdentifier
from providers.sms import LocmemSmsBackend
from tests.sms import PATIENT, inbound, nothing_written


@pytest.mark.django_db
def test_inbound_sms_records_turn_and_resolves_customer(tenant, twilio_post, django_capture_on_commit_callbacks):
    params = inbound(tenant, body="Hi, I'd like to book an appointment")
    with django_capture_on_commit_callbacks() as callbacks:
        response = twilio_post("/twilio/sms/", params, tenant=tenant)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    row = Interaction.objects.get()
    assert (row.channel, row.direction, row.tenant) == ("sms", "inbound", tenant)
    assert [t["text"] for t in row.transcript] == ["Hi, I'd like to book an appointment"]
    assert row.transcript[0]["ref"] == params["MessageSid"]
    ident = CustomerIdentifier.objects.get(kind="phone", value=PATIENT)
    assert ident.customer == row.customer and ident.verified
    # customer_message_received, the reply task and the conversation's activity bump, all on commit
    assert len(callbacks) == 3


@pytest.mark.django_db
@pytest.mark.parametrize("signature", ["", "forged-signature", "wrong-token"])
def test_bad_signature_is_403_and_writes_nothing(tenant, twilio_post, signature):
    kwargs = (
        {"token": "not-the-tenant-token", "tenant": tenant} if signature == "wrong-token" else {"signature": signature}
    )
    response = twilio_post("/twilio/sms/", inbound(tenant), **kwargs)
    assert response.status_code == 403
    assert nothing_written()


@pytest.mark.django_db
def test_signature_of_another_tenant_or_unknown_number_is_403(tenant, other_tenant, twilio_post):
    assert twilio_post("/twilio/sms/", inbound(tenant), tenant=other_tenant).status_code == 403
    stranger = {**inbound(tenant), "To": "+15559990000"}
    assert twilio_post("/twilio/sms/", stranger, tenant=tenant).status_code == 403
    assert nothing_written()


@pytest.mark.django_db
def test_tampered_body_after_signing_is_403(tenant, client):
    from django.conf import settings
    from twilio.request_validator import RequestValidator

    params = inbound(tenant, body="original")
    sig = RequestValidator(tenant.twilio_auth_token).compute_signature(
        settings.PUBLIC_BASE_URL + "/twilio/sms/", params
    )
    response = client.post("/twilio/sms/", {**params, "Body": "tampered"}, HTTP_X_TWILIO_SIGNATURE=sig)
    assert response.status_code == 403
    assert nothing_written()


@pytest.mark.django_db
def test_get_is_not_allowed(client):
    assert client.get("/twilio/sms/").status_code == 405


@pytest.mark.django_db
def test_duplicate_message_sid_is_one_turn(tenant, twilio_post, django_capture_on_commit_callbacks):
    params = inbound(tenant, sid="SM" + "1" * 32)
    with django_capture_on_commit_callbacks() as callbacks:
        assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200
        assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200
    assert ChannelMessage.objects.count() == 1
    assert len(Interaction.objects.get().transcript) == 1
    assert len(callbacks) == 3  # the first delivery's three callbacks; the duplicate adds none


@pytest.mark.django_db
def test_messages_join_one_exchange_until_idle(tenant, twilio_post):
    twilio_post("/twilio/sms/", inbound(tenant, body="one"), tenant=tenant)
    twilio_post("/twilio/sms/", inbound(tenant, body="two"), tenant=tenant)
    first = Interaction.objects.get()
    assert [t["text"] for t in first.transcript] == ["one", "two"]
    # idle past the tenant's window: the next message opens a new row in the same conversation
    old = timezone.now() - tenant.sms_idle_window - timedelta(minutes=1)
    Interaction.objects.filter(pk=first.pk).update(started_at=old, last_activity_at=old)
    twilio_post("/twilio/sms/", inbound(tenant, body="three"), tenant=tenant)
    rows = list(Interaction.objects.order_by("started_at"))
    assert len(rows) == 2
    assert rows[0].ended_at is not None and rows[1].ended_at is None
    assert rows[0].conversation_id == rows[1].conversation_id
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_reply_is_sent_once_and_recorded_with_its_sid(tenant, twilio_post):
    twilio_post("/twilio/sms/", inbound(tenant, body="Hi, my name is Ana"), tenant=tenant)
    inbound_msg = ChannelMessage.objects.get(direction="inbound")
    reply = sms_reply(inbound_id=inbound_msg.pk)
    sms_reply(inbound_id=inbound_msg.pk)  # a redelivered task
    assert len(LocmemSmsBackend.outbox) == 1
    assert LocmemSmsBackend.outbox[0]["to"] == PATIENT
    reply.refresh_from_db()
    assert reply.provider_id.startswith("SM") and reply.status == "queued"
    row = Interaction.objects.get()
    assert [t["role"] for t in row.transcript] == ["customer", "agent"]
    assert "Ana" in row.transcript[1]["text"]
    assert row.metadata["messages"][reply.provider_id]["status"] == "queued"
    assert not row.workflow.get("sms_reply_reservations")  # the reservation went with the reply row


@pytest.mark.django_db
def test_engine_remembers_across_turns(tenant, twilio_post):
    for body in ["Hello there", "my name is Ana", "what's my name?"]:
        twilio_post("/twilio/sms/", inbound(tenant, body=body), tenant=tenant)
        sms_reply(inbound_id=ChannelMessage.objects.filter(direction="inbound").latest("id").pk)
    assert "Ana" in LocmemSmsBackend.outbox[-1]["body"]


@pytest.mark.django_db
def test_status_callbacks_only_move_forward(tenant, twilio_post):
    twilio_post("/twilio/sms/", inbound(tenant), tenant=tenant)
    reply = sms_reply(inbound_id=ChannelMessage.objects.get(direction="inbound").pk)

    def status(value):
        params = twilio_payloads.sms_status(
            account_sid=tenant.twilio_account_sid,
            message_sid=reply.provider_id,
            status=value,
            from_="+15550100001",
            to=PATIENT,
        )
        return twilio_post("/twilio/sms/status/", params, tenant=tenant)

    for value in ["sent", "delivered", "sent", "queued"]:
        assert status(value).status_code == 204
    reply.refresh_from_db()
    assert reply.status == "delivered"
    assert Interaction.objects.get().metadata["messages"][reply.provider_id]["status"] == "delivered"


@pytest.mark.django_db
def test_status_callback_needs_a_valid_signature(tenant, twilio_post):
    twilio_post("/twilio/sms/", inbound(tenant), tenant=tenant)
    reply = sms_reply(inbound_id=ChannelMessage.objects.get(direction="inbound").pk)
    params = twilio_payloads.sms_status(
        account_sid=tenant.twilio_account_sid,
        message_sid=reply.provider_id,
        status="delivered",
        from_="+15550100001",
        to=PATIENT,
    )
    assert twilio_post("/twilio/sms/status/", params, signature="nope").status_code == 403
    reply.refresh_from_db()
    assert reply.status == "queued"


@pytest.mark.django_db
def test_stop_then_outbound_is_not_sent_and_start_opts_back_in(tenant, twilio_post):
    twilio_post("/twilio/sms/", inbound(tenant, body="STOP"), tenant=tenant)
    ident = CustomerIdentifier.objects.get(value=PATIENT)
    assert ident.sms_opted_out_at is not None
    message = sms_send(tenant=tenant, customer=ident.customer, to=PATIENT, body="Reminder", idempotency_key="t1")
    from channels_app.sms.services import sms_deliver

    sms_deliver(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == "suppressed"
    assert LocmemSmsBackend.outbox == []

    twilio_post("/twilio/sms/", inbound(tenant, body="start"), tenant=tenant)
    ident.refresh_from_db()
    assert ident.sms_opted_out_at is None
    sms_reply(inbound_id=ChannelMessage.objects.filter(direction="inbound").latest("id").pk)
    assert "subscribed again" in LocmemSmsBackend.outbox[-1]["body"]


@pytest.mark.django_db
def test_cancel_inside_a_sentence_is_not_an_opt_out(tenant, twilio_post):
    twilio_post("/twilio/sms/", inbound(tenant, body="please cancel my appointment"), tenant=tenant)
    assert CustomerIdentifier.objects.get(value=PATIENT).sms_opted_out_at is None


@pytest.mark.django_db
def test_help_answers_with_tenant_help_text(tenant, twilio_post):
    twilio_post("/twilio/sms/", inbound(tenant, body="HELP"), tenant=tenant)
    sms_reply(inbound_id=ChannelMessage.objects.get(direction="inbound").pk)
    assert LocmemSmsBackend.outbox[-1]["body"] == f"{tenant.short_name}: {tenant.sms_help_text}"


@pytest.mark.django_db
def test_missing_message_sid_is_400_and_writes_nothing(tenant, twilio_post):
    params = inbound(tenant)
    del params["MessageSid"], params["SmsSid"], params["SmsMessageSid"]
    assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 400
    assert nothing_written()


@pytest.mark.django_db
def test_close_idle_closes_only_idle_sessions_at_their_last_activity(tenant, twilio_post):
    from conversations.services import close_idle

    twilio_post("/twilio/sms/", inbound(tenant, body="old"), tenant=tenant)
    twilio_post("/twilio/sms/", inbound(tenant, body="fresh", from_="+15551230002"), tenant=tenant)
    old_row = Interaction.objects.get(transcript__0__text="old")
    idle_at = timezone.now() - tenant.sms_idle_window - timedelta(minutes=5)
    Interaction.objects.filter(pk=old_row.pk).update(started_at=idle_at, last_activity_at=idle_at)
    assert close_idle() == {"interactions": 1, "conversations": 0}
    old_row.refresh_from_db()
    assert old_row.ended_at == idle_at  # a session ends when it went quiet, not when the sweeper ran
    assert Interaction.objects.get(transcript__0__text="fresh").ended_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["delivery_unknown", "partially_delivered", "canceled", "scheduled"])
def test_every_twilio_message_status_is_accepted_and_stored(tenant, twilio_post, value):
    """Each status in Twilio's list (conversations.twilio_statuses) fits its column: 204, never a 500."""
    twilio_post("/twilio/sms/", inbound(tenant), tenant=tenant)
    reply = sms_reply(inbound_id=ChannelMessage.objects.get(direction="inbound").pk)
    params = twilio_payloads.sms_status(
        account_sid=tenant.twilio_account_sid,
        message_sid=reply.provider_id,
        status=value,
        from_="+15550100001",
        to=PATIENT,
    )
    assert twilio_post("/twilio/sms/status/", params, tenant=tenant).status_code == 204
    reply.refresh_from_db()
    assert reply.status == (value if value != "scheduled" else "queued")  # forward only: scheduled ranks as queued
