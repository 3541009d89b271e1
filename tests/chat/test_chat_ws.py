"""``/ws/chat/`` against a real daphne: origin per tenant, protocol, identity by phone, links, limits."""

from __future__ import annotations

import re
import time
from datetime import date
from unittest import mock

import aiohttp
import pytest
from django.core import signing
from django.utils import timezone

from channels_app.chat.links import SALT, chat_link_token
from channels_app.chat.verification import SENT
from channels_app.chat.visitors import visitor_key
from conversations import engine
from conversations.models import Appointment, ChannelMessage, Interaction
from conversations.selectors import state_get_all
from conversations.services import session_open
from identity.models import CustomerIdentifier
from identity.services import customer_resolve
from tests.clock import local, next_weekdays_since

pytestmark = [pytest.mark.django_db(transaction=True)]
PATIENT = "+15551230001"
VISITOR = "v" * 8 + "0123456789abcdef"


def texted_code(visitor: str = VISITOR) -> str:
    """The verification code the server texted for ``visitor`` (read from the outbound SMS it recorded)."""
    message = ChannelMessage.objects.filter(idempotency_key__startswith=f"chat-verify:{visitor_key(visitor)}:").latest(
        "id"
    )
    return re.search(r"\b(\d{6})\b", message.body).group(1)


def sms_booking_started(tenant):
    customer = customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer
    sms, _ = session_open(tenant=tenant, customer=customer, channel="sms")
    engine.respond(interaction=sms, text="I'd like to book for Tuesday")
    return customer, sms


def pending_tuesday(tenant, sms, since) -> date:
    """The day the agent saved for the booking started by SMS: a Tuesday, the next one as of some moment
    between ``since`` and now (the agent's own "Tuesday", so a run crossing midnight cannot disagree with it)."""
    day = date.fromisoformat(state_get_all(conversation=sms.conversation)["pending"]["date"])
    assert day.weekday() == 1 and day in next_weekdays_since(tenant, 1, since), day
    return day


def test_widget_from_a_non_allowed_origin_is_refused(tenant, ws_connect):
    for origin in [
        "https://evil.example",
        "https://clinic.example.com.evil.example",
        "http://clinic.example.com",
        None,
        "null",
    ]:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            ws_connect(tenant, origin=origin)
        assert caught.value.status == 403, origin
    assert not Interaction.objects.exists()


def test_unknown_widget_key_is_refused(tenant, ws_connect):
    with pytest.raises(aiohttp.WSServerHandshakeError):
        ws_connect(tenant, key="pk_unknown")


def test_other_tenants_origin_is_refused(tenant, other_tenant, ws_connect):
    other_tenant.allowed_widget_origins = ["https://other.example"]
    other_tenant.save(update_fields=["allowed_widget_origins"])
    with pytest.raises(aiohttp.WSServerHandshakeError):
        ws_connect(tenant, origin="https://other.example")
    ws_connect(other_tenant, origin="https://other.example").send({"type": "typing"})


def test_phone_in_chat_resumes_the_sms_booking(tenant, ws_connect):
    started = timezone.now()
    customer, sms = sms_booking_started(tenant)
    tuesday = pending_tuesday(tenant, sms, started)
    ws = ws_connect(tenant)
    ws.send({"type": "message", "id": "m" * 10, "text": "hi"})
    assert ws.recv() == {"type": "error", "code": "hello_first", "message": "send hello first"}
    ws.send({"type": "hello", "visitor": VISITOR})
    hello, greeting = ws.recv(), ws.recv()
    assert hello == {"type": "hello", "identified": False, "session": None}
    assert greeting["seq"] is None and "phone number" in greeting["text"]

    ws.send({"type": "message", "id": "msg-000001", "text": "It's me, my number is (555) 123-0001"})
    frames = ws.until(lambda f: f["type"] == "reply")
    echo, challenge = frames[-2], frames[-1]
    echo_session = echo.pop("session")
    assert echo == {"type": "message", "seq": 0, "id": "msg-000001", "text": "It's me, my number is (555) 123-0001"}
    assert challenge["text"] == SENT["phone"]  # the same sentence as for a number nobody has
    assert not CustomerIdentifier.objects.filter(kind="cookie", value=visitor_key(VISITOR), customer=customer).exists()

    code = texted_code()
    ws.send({"type": "message", "id": "msg-000002", "text": code})
    reply = ws.until(lambda f: f["type"] == "reply")[-1]
    assert reply["seq"] == 1 and reply["text"].startswith("Welcome back") and "Tuesday" in reply["text"]
    assert reply["session"] != echo_session  # verification switched sessions: the widget resets its seqs
    # the code the visitor typed back never enters a transcript (admin, API and CSV show transcripts)
    assert not [i.pk for i in Interaction.objects.all() if code in str(i.transcript)]
    assert not ChannelMessage.objects.filter(body__contains=code, direction="inbound").exists()
    assert CustomerIdentifier.objects.get(kind="cookie", value=visitor_key(VISITOR)).customer == customer

    ws.send({"type": "message", "id": "msg-000003", "text": "2 PM"})
    reply = ws.until(lambda f: f["type"] == "reply")[-1]
    assert "You're booked" in reply["text"]
    assert Appointment.objects.get().starts_at == local(tenant, tuesday, 14)
    rows = Interaction.objects.filter(conversation=sms.conversation).order_by("channel")
    assert [r.channel for r in rows] == ["chat", "sms"]
    # the turns typed before the code was proven are folded into the patient's history, not lost
    before = Interaction.objects.get(customer=customer, channel="chat", ended_at__isnull=False)
    assert before.transcript[0]["text"] == "It's me, my number is (555) 123-0001"

    # a resend after a reconnect is recorded once and answered with the stored turns
    ws.send({"type": "message", "id": "msg-000003", "text": "2 PM"})
    replay = ws.until(lambda f: f["type"] == "reply")
    assert [f["seq"] for f in replay if "seq" in f] == [2, 3]
    chat = Interaction.objects.get(channel="chat", conversation=sms.conversation)
    assert len(chat.transcript) == 4 and Appointment.objects.count() == 1


def test_someone_elses_number_without_the_code_reveals_and_changes_nothing(tenant, ws_connect):
    customer, _ = sms_booking_started(tenant)
    ws = ws_connect(tenant)
    ws.send({"type": "hello", "visitor": VISITOR})
    ws.until(lambda f: f["type"] == "reply")
    ws.send({"type": "message", "id": "msg-000001", "text": "my number is 555 123 0001"})
    ws.until(lambda f: f["type"] == "reply")
    code = texted_code()
    wrong = [f"{(int(code) + k) % 10**6:06d}" for k in range(1, 6)]  # five guesses, none of them the code
    texts = []
    for i, guess in enumerate([*wrong, "cancel my appointment"]):
        ws.send({"type": "message", "id": f"msg-1{i:05d}", "text": guess})
        texts.append(ws.until(lambda f: f["type"] == "reply")[-1]["text"])
    assert "doesn't match" in texts[0] and "too many times" in texts[4]
    assert not any("Tuesday" in t for t in texts)
    assert not CustomerIdentifier.objects.filter(kind="cookie", value=visitor_key(VISITOR), customer=customer).exists()
    # the real code, after five wrong tries, is void
    assert texted_code() == code  # no new code was texted meanwhile
    ws.send({"type": "message", "id": "msg-200000", "text": code})
    assert "Welcome back" not in ws.until(lambda f: f["type"] == "reply")[-1]["text"]
    assert not Interaction.objects.filter(customer=customer, channel="chat").exists()


def test_reconnect_replays_only_missed_turns(tenant, ws_connect):
    sms_booking_started(tenant)
    first = ws_connect(tenant)
    first.send({"type": "hello", "visitor": VISITOR})
    first.until(lambda f: f["type"] == "reply")
    first.send({"type": "message", "id": "msg-000001", "text": "my number is 555 123 0001"})
    first.until(lambda f: f["type"] == "reply")
    first.send({"type": "message", "id": "msg-000002", "text": texted_code()})
    first.until(lambda f: f["type"] == "reply")
    first.close()

    second = ws_connect(tenant)  # same browser (visitor id), knows turns up to seq 0
    second.send({"type": "hello", "visitor": VISITOR, "last_seq": 0})
    hello, missed = second.recv(), second.recv()
    assert hello["identified"] is True
    assert missed["seq"] == 1 and "Tuesday" in missed["text"]


def test_chat_link_identifies_and_forged_or_expired_links_are_refused(tenant, other_tenant, ws_connect):
    customer, _ = sms_booking_started(tenant)
    good = chat_link_token(customer=customer)
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 2 * 24 * 3600):
        expired = chat_link_token(customer=customer)
    forged = signing.dumps({"c": str(customer.pk)}, salt=SALT, key="not-the-secret-key")
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    for token, code in [(forged, "link_invalid"), (tampered, "link_invalid"), (expired, "link_expired")]:
        ws = ws_connect(tenant)
        ws.send({"type": "hello", "visitor": VISITOR, "link": token})
        assert ws.recv()["code"] == code
    # a valid link of another tenant's widget is refused too
    other_tenant.allowed_widget_origins = ["https://clinic.example.com"]
    other_tenant.save(update_fields=["allowed_widget_origins"])
    ws = ws_connect(other_tenant)
    ws.send({"type": "hello", "visitor": VISITOR, "link": good})
    assert ws.recv()["code"] == "link_invalid"
    assert not Interaction.objects.filter(channel="chat").exists()

    ws = ws_connect(tenant)
    ws.send({"type": "hello", "visitor": VISITOR, "link": good})
    hello, greeting = ws.recv(), ws.recv()
    assert hello["identified"] is True and greeting["seq"] == 0 and "Tuesday" in greeting["text"]
    assert Interaction.objects.get(channel="chat").metadata["identified_by"] == "link"

    # the same browser may come back with it; a forwarded copy opened in another browser may not
    again = ws_connect(tenant)
    again.send({"type": "hello", "visitor": VISITOR, "link": good})
    assert again.recv()["identified"] is True
    stranger = ws_connect(tenant)
    stranger.send({"type": "hello", "visitor": "s" * 8 + "0123456789abcdef", "link": good})
    assert stranger.recv()["code"] == "link_used"


def test_size_and_rate_limits(tenant, ws_connect, redis_client):
    ws = ws_connect(tenant)
    ws.send({"type": "hello", "visitor": VISITOR})
    ws.until(lambda f: f["type"] == "reply")
    ws.send({"type": "message", "id": "msg-toolong", "text": "x" * 2001})
    assert ws.recv()["code"] == "too_long"
    codes = []
    for i in range(9):  # CHAT_RATE_LIMIT=8 for this daphne
        ws.send({"type": "message", "id": f"msg-{i:06d}", "text": f"hello {i}"})
        codes.append(ws.until(lambda f: f["type"] in ("reply", "error"))[-1].get("code"))
    assert codes[:8] == [None] * 8 and codes[8] == "rate_limited"
    # counted in Redis under the visitor key, never the raw visitor id (a bearer credential)
    assert redis_client.keys(f"*chat-rate:{tenant.pk}:{visitor_key(VISITOR)}*")
    assert not redis_client.keys(f"*{VISITOR}*")
    ws.send("{" + " " * 17000 + "}")
    assert ws.recv() == {"type": "_closed", "code": 1009}  # daphne's limit (CHAT_MAX_FRAME_BYTES): a clean close


def test_simulate_chat_command_talks_to_a_running_server(tenant, daphne):
    from io import StringIO

    from django.core.management import call_command

    started = timezone.now()
    customer, sms = sms_booking_started(tenant)
    tuesday = pending_tuesday(tenant, sms, started)
    out = StringIO()
    call_command(
        "simulate",
        "--server",
        daphne,
        "--tenant",
        tenant.slug,
        "chat",
        "--phone",
        PATIENT,
        "--text",
        "10am please",
        stdout=out,
    )
    assert "Welcome back" in out.getvalue() and "You're booked" in out.getvalue()
    assert Appointment.objects.get(customer=customer).starts_at == local(tenant, tuesday, 10)
