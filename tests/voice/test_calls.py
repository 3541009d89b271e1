"""POST /twilio/voice/ and the turn loop: greeting, speech turns, replays, urgency, no-input, goodbye."""

import pytest

from channels_app import twilio_payloads
from conversations.models import ChannelMessage, Conversation, Interaction
from conversations.signals import escalation_requested
from identity.models import CustomerIdentifier
from tests.voice.phone import CALLER, CLINIC, Phone, says


@pytest.mark.django_db
def test_inbound_call_opens_a_voice_session_and_greets_with_a_speech_gather(phone, tenant):
    document = phone.answer()
    gather = phone.last.find("Gather")
    assert gather.get("input") == "speech" and gather.get("bargeIn") == "true"
    assert gather.get("action").endswith("/twilio/voice/gather/?turn=1")
    assert phone.last.find("Redirect").text.endswith("/twilio/voice/no-input/?turn=1&n=1")
    assert tenant.short_name in says(document)[0]
    row = Interaction.objects.get()
    assert (row.channel, row.direction, row.ended_at) == ("voice", "inbound", None)
    assert row.metadata["call_sid"] == phone.sid
    assert [(t["role"], t["event"]) for t in row.transcript] == [("agent", "greeting")]
    call = ChannelMessage.objects.get()
    assert (call.channel, call.provider_id, call.status, call.sender) == ("voice", phone.sid, "ringing", CALLER)
    assert CustomerIdentifier.objects.get(value=CALLER).customer == row.customer


@pytest.mark.django_db
def test_duplicate_call_sid_opens_no_second_session(phone, tenant):
    first = phone.answer()
    again = phone.answer()  # Twilio retrying the incoming-call webhook
    assert says(again) == says(first)
    assert Interaction.objects.count() == 1 and ChannelMessage.objects.count() == 1
    assert len(Interaction.objects.get().transcript) == 1


@pytest.mark.django_db
def test_each_turn_is_appended_as_it_happens_and_a_replayed_turn_is_answered_once(phone, tenant):
    phone.answer()
    action = phone.gather_action()
    reply = phone.say("Hi, my name is Ana")
    row = Interaction.objects.get()
    assert [t["role"] for t in row.transcript] == ["agent", "customer", "agent"]
    assert row.transcript[1]["text"] == "Hi, my name is Ana" and row.transcript[1]["turn"] == 1
    assert phone.gather_action().endswith("turn=2")
    # Twilio replays the same Gather action (turn 1): the same answer, no new turns, no second engine run
    params = twilio_payloads.gather_speech(
        account_sid=tenant.twilio_account_sid, call_sid=phone.sid, from_=CALLER, to=CLINIC, speech="Hi, my name is Ana"
    )
    replay = phone.post(action, params, tenant=tenant)
    assert says(replay.content.decode()) == says(reply)
    assert len(Interaction.objects.get().transcript) == 3
    phone.say("What's my name?")
    assert "Ana" in Interaction.objects.get().transcript[-1]["text"]


@pytest.mark.django_db
def test_emergency_words_tell_the_caller_help_is_coming_and_escalate_once(
    phone, tenant, escalations, django_capture_on_commit_callbacks
):
    phone.answer()
    with django_capture_on_commit_callbacks(execute=True):
        document = phone.say("My husband has chest pain and can't breathe")
    assert "emergency" in says(document)[0] and "911" in says(document)[0]
    row = Interaction.objects.get()
    assert row.escalated and row.urgency == 5
    assert escalations == [
        {
            "signal": escalation_requested,
            "interaction_id": row.pk,
            "urgency": 5,
            "reason": "red flag: chest_pain_cardiac, breathing_difficulty",
        }
    ]
    with django_capture_on_commit_callbacks(execute=True):
        phone.say("he is still in pain, chest pain")
    assert len(escalations) == 1  # one incident request per interaction
    assert phone.last.find("Gather") is not None  # the line stays open


@pytest.mark.django_db
def test_ordinary_turn_is_assessed_but_not_escalated(phone, escalations, django_capture_on_commit_callbacks):
    phone.answer()
    with django_capture_on_commit_callbacks(execute=True):
        phone.say("I'd like to book an appointment")
    row = Interaction.objects.get()
    assert row.urgency == 1 and not row.escalated and escalations == []


@pytest.mark.django_db
def test_silence_reprompts_then_offers_voicemail(phone, tenant):
    phone.answer()
    document = phone.silence()
    assert says(document) == ["Sorry, I didn't catch that. How can I help you?"]
    assert phone.gather_action().endswith("turn=1")
    assert phone.last.find("Redirect").text.endswith("n=2")
    document = phone.silence()
    record = phone.last.find("Record")
    assert record is not None and record.get("transcribe") == "true"
    assert record.get("recordingStatusCallback").endswith("/twilio/voice/recording/")
    assert record.get("transcribeCallback").endswith("/twilio/voice/transcription/")
    assert phone.last.find("Hangup") is not None
    events = [t.get("event") for t in Interaction.objects.get().transcript]
    assert events == ["greeting", "no_input", "voicemail"]


@pytest.mark.django_db
def test_goodbye_ends_the_call_gracefully(phone, tenant):
    phone.answer()
    document = phone.say("No thanks, that's all")
    assert says(document) == [f"Thank you for calling {tenant.short_name}. Goodbye."]
    assert phone.last.find("Hangup") is not None and phone.last.find("Gather") is None
    assert Interaction.objects.get().metadata["ended_by"] == "agent"


@pytest.mark.django_db
def test_after_hours_greeting_offers_voicemail(twilio_post, tenant):
    from conversations.models import AgentSettings

    AgentSettings.objects.create(tenant=tenant, bookable_hours={})  # never open
    document = Phone(twilio_post, tenant).answer()
    assert "leave a message" in says(document)[0]


@pytest.mark.django_db
def test_anonymous_caller_gets_a_customer_of_their_own(twilio_post, tenant, open_all_day):
    Phone(twilio_post, tenant, caller="+266696687").answer()  # Twilio's "anonymous" caller ID
    row = Interaction.objects.get()
    assert row.customer.identifiers.get().kind == "cookie"
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_a_new_call_closes_the_previous_call_left_open(twilio_post, tenant, open_all_day):
    first = Phone(twilio_post, tenant)
    first.answer()  # its completion callback never arrives
    Phone(twilio_post, tenant).answer()
    rows = list(Interaction.objects.order_by("started_at"))
    assert len(rows) == 2 and rows[0].ended_at is not None and rows[1].ended_at is None
    assert rows[0].conversation_id == rows[1].conversation_id


@pytest.mark.django_db
def test_missing_call_sid_is_400_and_writes_nothing(twilio_post, tenant):
    params = twilio_payloads.inbound_call(account_sid=tenant.twilio_account_sid, from_=CALLER, to=CLINIC)
    del params["CallSid"]
    assert twilio_post("/twilio/voice/", params, tenant=tenant).status_code == 400
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_speech_for_another_tenants_call_is_not_applied(phone, tenant, other_tenant, twilio_post):
    phone.answer()
    params = twilio_payloads.gather_speech(
        account_sid=other_tenant.twilio_account_sid, call_sid=phone.sid, from_=CALLER, to="+15550100002", speech="hello"
    )
    response = twilio_post("/twilio/voice/gather/?turn=1", params, tenant=other_tenant)
    assert response.status_code == 200 and phone.last.find("Gather") is not None
    assert len(Interaction.objects.get().transcript) == 1


@pytest.mark.django_db
def test_each_speech_turn_is_announced_once_as_a_customer_message(phone, django_capture_on_commit_callbacks):
    from conversations.signals import customer_message_received

    heard = []
    customer_message_received.connect(
        lambda sender, **kw: heard.append(kw), weak=False, dispatch_uid="tests.voice.heard"
    )
    try:
        phone.answer()
        with django_capture_on_commit_callbacks(execute=True):
            action = phone.gather_action()
            phone.say("I need a refill of my prescription")
            params = twilio_payloads.gather_speech(
                account_sid=phone.tenant.twilio_account_sid,
                call_sid=phone.sid,
                from_=CALLER,
                to=CLINIC,
                speech="I need a refill of my prescription",
            )
            phone.post(action, params, tenant=phone.tenant)  # replayed: not announced again
    finally:
        customer_message_received.disconnect(dispatch_uid="tests.voice.heard")
    call = ChannelMessage.objects.get(provider_id=phone.sid)
    assert [(h["interaction_id"], h["message_id"], h["text"]) for h in heard] == [
        (call.interaction_id, call.pk, "I need a refill of my prescription")
    ]
