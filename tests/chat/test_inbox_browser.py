"""Patient and staff in two Chromium contexts (Playwright) against daphne: hand-off → inbox → takeover → reply
in the widget → the AI stays quiet → Return to AI → the AI answers again."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from conversations.models import Interaction
from identity.models import TenantMembership
from tests.factories import TenantFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDGET = "#callsphere-widget"
AGENT = f"{WIDGET} .cs-msg.cs-agent"


def session_of(user) -> str:
    """A session for ``user`` (daphne's settings hash passwords differently from the tests')."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def say(page, text: str) -> None:
    """Type ``text`` in the widget and wait until the server acknowledged it (stored, and answered if it will
    be: the chat service stores the AI's reply before it acknowledges)."""
    page.locator(f"{WIDGET} .cs-input").fill(text)
    page.keyboard.press("Enter")
    page.locator(f"{WIDGET} .cs-msg.cs-customer:not(.cs-pending)", has_text=text).wait_for(timeout=20000)


def test_takeover_from_the_inbox_end_to_end(daphne, browser):
    tenant = TenantFactory(slug="demo", allowed_widget_origins=[daphne])
    user = get_user_model().objects.create_user("anna", password="pw-anna", first_name="Anna", is_staff=True)
    TenantMembership.objects.create(user=user, tenant=tenant)

    staff_context, patient_context = browser.new_context(), browser.new_context()
    try:
        staff = staff_context.new_page()
        staff_context.add_cookies([{"name": "sessionid", "value": session_of(user), "url": daphne}])
        staff.goto(daphne + "/admin/conversations/inboxconversation/")
        staff.locator("#cs-live.on").wait_for(timeout=20000)  # the inbox websocket is connected

        patient = patient_context.new_page()
        patient.goto(daphne + "/demo/")
        patient.locator(f"{WIDGET} .cs-launcher").click()
        patient.locator(AGENT).first.wait_for(timeout=20000)
        say(patient, "Can I talk to a real person please?")
        patient.locator(AGENT).nth(1).wait_for(timeout=20000)

        # the conversation appears live in the inbox, marked as needing a human
        row = staff.locator("#cs-inbox-rows tr.cs-needs", has_text="needs a human")
        row.wait_for(timeout=20000)
        assert "Web visitor" in row.text_content() or "real person" in row.text_content()
        row.locator("a.cs-name").click()
        staff.locator("#cs-take-over").click()
        staff.locator("#cs-takeover-state[data-paused='1']").wait_for(timeout=20000)
        staff.fill("#cs-reply-body", "Hi, this is Anna from the front desk. How can I help?")
        staff.locator("#cs-send").click()
        staff.locator("#cs-thread li.cs-role-staff").wait_for(timeout=20000)

        reply = patient.locator(f"{WIDGET} .cs-msg.cs-staff", has_text="this is Anna")
        reply.wait_for(timeout=20000)
        assert "Anna" in reply.locator(".cs-who").text_content()

        # the patient's next message reaches staff live and gets no AI reply
        agents_before = patient.locator(AGENT).count()
        say(patient, "I need to move my appointment to Friday")
        chat = Interaction.objects.get(channel="chat")
        assert chat.transcript[-1]["role"] == "customer"
        assert patient.locator(AGENT).count() == agents_before
        staff.locator("#cs-thread li.cs-role-customer", has_text="move my appointment").wait_for(timeout=20000)

        # Return to AI → the AI answers again
        staff.locator("#cs-release").click()
        staff.locator("#cs-takeover-state[data-paused='0']").wait_for(timeout=20000)
        say(patient, "Hello, can I book an appointment?")
        patient.locator(AGENT).nth(agents_before).wait_for(timeout=20000)
        chat.refresh_from_db()
        assert chat.transcript[-1]["role"] == "agent"
        roles = [t["role"] for t in chat.transcript]
        assert "staff" in roles and roles.count("customer") == 3
    finally:
        staff_context.close()
        patient_context.close()
