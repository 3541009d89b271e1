"""The chat survey in a real Chromium at phone size (375 px): the session closes, the widget shows five stars,
one tap stores the score with source ``survey``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from channels_app.surveys import survey_ask
from conversations.models import Interaction, SatisfactionSurvey
from conversations.services import interaction_close
from tests.factories import PhoneNumberFactory, TenantFactory
from tests.processes import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
AGENT = "#callsphere-widget .cs-msg.cs-agent"
PHONE = {"width": 375, "height": 740}


def _ask_in_worker_thread(interaction_id):
    from django.db import connection

    try:
        return survey_ask(interaction_id=interaction_id)
    finally:
        connection.close()


def test_chat_survey_stars_at_phone_size(daphne, browser):
    tenant = TenantFactory(slug="demo", allowed_widget_origins=[daphne])
    PhoneNumberFactory(tenant=tenant, number="+15550100001")
    page = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(daphne + "/demo/")
    page.locator("#callsphere-widget .cs-launcher").tap()
    page.locator(AGENT).first.wait_for(timeout=20000)
    page.locator("#callsphere-widget .cs-input").fill("hi there, is there parking near the clinic? 🚗")
    page.keyboard.press("Enter")
    page.locator(AGENT).nth(1).wait_for(timeout=20000)

    chat = wait_for(lambda: Interaction.objects.filter(channel="chat").first())
    interaction_close(interaction=chat)  # the idle sweeper closes the session while the page is still open
    # the survey task runs in a worker; here in a thread of its own (Playwright holds an event loop in this one)
    with ThreadPoolExecutor(1) as pool:
        survey = pool.submit(_ask_in_worker_thread, chat.pk).result(timeout=30)
    assert survey is not None and survey.channel == "chat"

    stars = page.locator("#callsphere-widget .cs-star")
    stars.first.wait_for(timeout=20000)
    assert stars.count() == 5
    box = stars.nth(3).bounding_box()
    assert box["width"] >= 44 and box["height"] >= 44  # thumb-sized
    panel = page.locator("#callsphere-widget .cs-panel").bounding_box()
    assert panel["x"] >= 0 and panel["x"] + panel["width"] <= PHONE["width"]  # fits the phone's screen
    stars.nth(3).tap()
    page.locator("#callsphere-widget .cs-survey", has_text="Thank you for your feedback").wait_for(timeout=20000)
    page.close()

    survey.refresh_from_db()
    chat.refresh_from_db()
    assert (survey.status, survey.score) == ("answered", 4)
    assert (chat.satisfaction, chat.satisfaction_source) == (4, "survey")
    assert SatisfactionSurvey.objects.count() == 1


def test_a_survey_missed_while_the_tab_was_closed_shows_after_a_reload_and_counts_once(daphne, browser):
    tenant = TenantFactory(slug="demo", allowed_widget_origins=[daphne])
    PhoneNumberFactory(tenant=tenant, number="+15550100001")
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)  # one phone: one localStorage
    page = context.new_page()
    page.goto(daphne + "/demo/")
    page.locator("#callsphere-widget .cs-launcher").tap()
    page.locator(AGENT).first.wait_for(timeout=20000)
    page.locator("#callsphere-widget .cs-input").fill("what time do you open on saturdays?")
    page.keyboard.press("Enter")
    page.locator(AGENT).nth(1).wait_for(timeout=20000)
    page.close()  # the patient left; the session closes and the survey goes out to nobody

    chat = wait_for(lambda: Interaction.objects.filter(channel="chat").first())
    interaction_close(interaction=chat)
    with ThreadPoolExecutor(1) as pool:
        survey = pool.submit(_ask_in_worker_thread, chat.pk).result(timeout=30)
    assert survey is not None

    page = context.new_page()  # back on the clinic's site later
    page.goto(daphne + "/demo/")
    page.locator("#callsphere-widget .cs-launcher").tap()
    stars = page.locator("#callsphere-widget .cs-star")
    stars.first.wait_for(timeout=20000)
    assert stars.count() == 5
    stars.nth(4).tap()
    page.locator("#callsphere-widget .cs-survey", has_text="Thank you for your feedback").wait_for(timeout=20000)

    page.reload()
    page.locator("#callsphere-widget .cs-launcher").tap()
    page.locator(AGENT).first.wait_for(timeout=20000)
    page.wait_for_timeout(1500)  # the hello's frames have arrived; an unanswered survey would be among them
    assert page.locator("#callsphere-widget .cs-star").count() == 0
    context.close()

    survey.refresh_from_db()
    chat.refresh_from_db()
    assert (survey.status, survey.score) == ("answered", 5)
    assert (chat.satisfaction, chat.satisfaction_source) == (5, "survey")
