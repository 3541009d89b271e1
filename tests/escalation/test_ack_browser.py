"""The acknowledge link in a real Chromium at phone size (375 px), against daphne: opened as a top-level
navigation with no referrer (tapped in an SMS app) and from a page on another origin. The confirm page sends
``Referrer-Policy: no-referrer``, so Chromium posts the form with ``Origin: null`` (issue 11: that was a 403)."""

from __future__ import annotations

import pytest
from django.conf import settings

from escalation.models import NotificationAttempt
from escalation.services.messages import ack_link
from tests.escalation.steps import PHONE, pending_retry

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SMS_APP = "https://sms-app.example"


def _assert_acknowledged(incident, token, retry):
    incident.refresh_from_db()
    token.refresh_from_db()
    retry.refresh_from_db()
    assert (incident.status, incident.ack_via, incident.acknowledged_by_id) == (
        "acknowledged",
        "link",
        token.responder_id,
    )
    assert incident.next_step_at is None and token.used_at is not None
    assert retry.status == "cancelled"
    assert not NotificationAttempt.objects.filter(incident=incident, status__in=["pending", "sending"]).exists()


def _tap_acknowledge(page) -> list[dict]:
    """Tap the button and return the headers of the POST Chromium sent."""
    posts: list[dict] = []
    page.on("request", lambda r: posts.append(r.headers) if r.method == "POST" else None)
    button = page.get_by_role("button", name="Acknowledge")
    assert button.bounding_box()["width"] <= 375
    with page.expect_navigation():
        button.tap()
    page.get_by_role("heading", name="Acknowledged").wait_for(timeout=20000)
    return posts


def test_link_opened_from_an_sms_app_with_no_referrer(paged, daphne, browser):
    incident, token = paged
    retry = pending_retry(incident)
    url = ack_link(token).replace(settings.PUBLIC_BASE_URL, daphne)
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        response = page.goto(url, referer="")
        assert response.status == 200 and response.headers["referrer-policy"] == "no-referrer"
        page.get_by_role("button", name="Acknowledge").wait_for()
        incident.refresh_from_db()
        assert incident.status == "triggered"  # the GET changed nothing
        posts = _tap_acknowledge(page)
        assert posts and posts[0].get("origin") == "null" and "referer" not in posts[0]
        assert not context.cookies()  # nothing ambient authorised it
    finally:
        context.close()
    _assert_acknowledged(incident, token, retry)


def test_link_followed_from_a_page_on_another_origin(paged, daphne, browser):
    incident, token = paged
    retry = pending_retry(incident)
    url = ack_link(token).replace(settings.PUBLIC_BASE_URL, daphne)
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        page.route(
            f"{SMS_APP}/**",
            lambda route: route.fulfill(
                status=200,
                content_type="text/html",
                body=f'<!doctype html><meta name="viewport" content="width=device-width"><a id="l" href="{url}">{url}</a>',
            ),
        )
        page.goto(f"{SMS_APP}/thread")
        with page.expect_navigation():
            page.locator("#l").tap()
        assert page.url == url
        posts = _tap_acknowledge(page)
        assert posts and posts[0].get("origin") == "null"
    finally:
        context.close()
    _assert_acknowledged(incident, token, retry)
