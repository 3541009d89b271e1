"""The widget in a real Chromium (Playwright, Debian's chromium) against daphne and a real Celery worker."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.utils import timezone

from channels_app import twilio_payloads
from channels_app.simulate.base import signed_post
from conversations import engine
from conversations.models import Appointment, ChannelMessage, Interaction
from conversations.services import session_open
from identity.services import customer_resolve
from tests.clock import local, next_weekdays_since
from tests.factories import PhoneNumberFactory, TenantFactory
from tests.processes import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PATIENT = "+15551230001"
AGENT = "#callsphere-widget .cs-msg.cs-agent"


def text_sms(base, tenant, body):
    params = twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid, from_=PATIENT, to="+15550100001", body=body
    )
    assert (
        signed_post(server=base, path="/twilio/sms/", params=params, auth_token=tenant.twilio_auth_token).status_code
        == 200
    )
    return wait_for(
        lambda: (
            ChannelMessage.objects.filter(idempotency_key=f"reply:{params['MessageSid']}")
            .exclude(status="pending")
            .first()
        )
    )


@pytest.mark.worker
def test_sms_then_chat_link_then_booking_end_to_end(tenant, daphne, celery_worker, browser):
    tenant.allowed_widget_origins = [daphne]
    tenant.save(update_fields=["allowed_widget_origins"])

    started = timezone.now()  # before the agent hears "Tuesday"
    reply = text_sms(daphne, tenant, "I'd like to book for Tuesday")
    assert "What time on Tuesday" in reply.body
    reply = text_sms(daphne, tenant, "Could you text me a link so I can continue in chat?")
    assert "texted you a link" in reply.body
    link_sms = wait_for(
        lambda: (
            ChannelMessage.objects.filter(idempotency_key__startswith="chat-link:").exclude(status="pending").first()
        )
    )
    url = re.search(r"https?://\S+", link_sms.body).group(0)
    assert url.startswith(settings.PUBLIC_BASE_URL + "/c/") and PATIENT not in url and "Tuesday" not in url

    page = browser.new_page()
    page.goto(url.replace(settings.PUBLIC_BASE_URL, daphne))
    greeting = page.locator(AGENT).first
    greeting.wait_for(timeout=20000)
    assert greeting.text_content().startswith("Welcome back") and "Tuesday" in greeting.text_content()

    page.locator("#callsphere-widget .cs-input").fill("2 PM")
    page.keyboard.press("Enter")
    page.locator(AGENT, has_text="You're booked").wait_for(timeout=20000)
    page.close()

    appointment = Appointment.objects.get()
    day = appointment.starts_at.astimezone(tenant.tzinfo).date()
    assert day.weekday() == 1 and day in next_weekdays_since(tenant, 1, started), day  # the next Tuesday
    assert appointment.starts_at == local(tenant, day, 14) and appointment.booked_via == "chat"
    confirmation = wait_for(
        lambda: (
            ChannelMessage.objects.filter(idempotency_key=f"appointment:{appointment.pk}:v1")
            .exclude(status="pending")
            .first()
        )
    )
    assert confirmation.recipient == PATIENT and "2:00 PM" in confirmation.body and confirmation.provider_id
    rows = list(Interaction.objects.order_by("channel"))
    assert [r.channel for r in rows] == ["chat", "sms"]
    assert len({r.conversation_id for r in rows}) == 1 and appointment.conversation_id == rows[0].conversation_id


def test_widget_shows_html_as_text_isolates_styles_and_survives_a_dropped_connection(daphne, browser):
    TenantFactory(slug="demo", allowed_widget_origins=[daphne])
    page = browser.new_page()
    sockets = []

    def through(ws):
        sockets.append(ws)
        ws.connect_to_server()

    page.route_web_socket(re.compile(r".*/ws/chat/.*"), through)
    page.goto(daphne + "/demo/")
    launcher = page.locator("#callsphere-widget .cs-launcher")
    assert launcher.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(31, 111, 235)"  # not hotpink
    launcher.click()
    page.locator(AGENT).first.wait_for(timeout=20000)

    evil = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>bold</b>'
    page.locator("#callsphere-widget .cs-input").fill(evil)
    page.keyboard.press("Enter")
    page.locator(AGENT).nth(1).wait_for(timeout=20000)
    mine = page.locator("#callsphere-widget .cs-msg.cs-customer")
    assert mine.count() == 1 and mine.first.text_content() == evil
    assert mine.first.evaluate("el => el.children.length") == 0
    assert page.evaluate("window.__xss") is None

    sockets[-1].close()  # the connection drops; the visitor keeps typing
    page.locator("#callsphere-widget .cs-input").fill("still there?")
    page.keyboard.press("Enter")
    page.locator(AGENT).nth(2).wait_for(timeout=30000)
    assert len(sockets) >= 2
    texts = list(page.locator("#callsphere-widget .cs-msg.cs-customer").all_text_contents())
    assert texts == [evil, "still there?"]
    row = Interaction.objects.get(channel="chat")
    assert [t["text"] for t in row.transcript if t["role"] == "customer"] == [evil, "still there?"]
    page.close()


def test_verifying_a_phone_mid_conversation_keeps_every_reply_without_a_reload(daphne, browser):
    """The code switches the visitor to the patient's own session, whose turn numbering starts again at 0: the
    widget must still show the "Welcome back" greeting and the booking that follow (no reload)."""
    tenant = TenantFactory(slug="demo", allowed_widget_origins=[daphne])
    PhoneNumberFactory(tenant=tenant, number="+15550100001")  # the clinic's number the code is texted from
    patient = customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer
    sms, _ = session_open(tenant=tenant, customer=patient, channel="sms")
    engine.respond(interaction=sms, text="I'd like to book for Tuesday")

    page = browser.new_page()
    page.goto(daphne + "/demo/")
    page.locator("#callsphere-widget .cs-launcher").click()
    page.locator(AGENT).first.wait_for(timeout=20000)
    box = page.locator("#callsphere-widget .cs-input")
    box.fill("hello, is anyone there?")
    page.keyboard.press("Enter")
    page.locator(AGENT).nth(1).wait_for(timeout=20000)
    box.fill("my number is 555 123 0001")
    page.keyboard.press("Enter")
    page.locator(AGENT).nth(2).wait_for(timeout=20000)
    sent = wait_for(lambda: ChannelMessage.objects.filter(idempotency_key__startswith="chat-verify:").first())
    box.fill(re.search(r"\b(\d{6})\b", sent.body).group(1))
    page.keyboard.press("Enter")
    page.locator(AGENT, has_text="Welcome back").wait_for(timeout=20000)  # seq 1 of the new session
    box.fill("2 PM")
    page.keyboard.press("Enter")
    page.locator(AGENT, has_text="You're booked").wait_for(timeout=20000)
    customer_texts = page.locator("#callsphere-widget .cs-msg.cs-customer").all_text_contents()
    assert customer_texts[-1] == "2 PM" and len(customer_texts) == 4
    page.close()
    assert Appointment.objects.get().customer_id == patient.pk
