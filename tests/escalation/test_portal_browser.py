"""The clinician's whole journey in a real Chromium at 375 px against daphne (Twilio is the stub at its HTTP
boundary): the texted link → confirm page → tap Acknowledge → everything pending stops → the code from the SMS →
the portal with the patient's number → "Call patient" → the bridge call placed to the responder, ``<Dial>``ing the
patient with the clinic's number as caller id."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from escalation.models import NotificationAttempt, PortalAccess
from escalation.services.messages import ack_link
from tests import processes
from tests.escalation.conftest import CLINIC_NUMBER, PATIENT_PHONE, PRIMARY, worker_env
from tests.escalation.steps import PHONE, pending_retry

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def stub_daphne(django_db_setup, django_db_blocker, tmp_path_factory, twilio_stub_server):
    """daphne whose SMS and voice providers talk to the Twilio stub."""
    with django_db_blocker.unblock():
        proc, base = processes.start_daphne(
            log_path=tmp_path_factory.mktemp("daphne") / "daphne.log", **worker_env(twilio_stub_server)
        )
    yield base
    processes.stop(proc)


def test_text_to_ack_to_code_to_portal_to_bridge_call(paged, stub_daphne, twilio_stub_server, browser):
    stub = twilio_stub_server
    stub.reset()
    incident, token = paged
    retry = pending_retry(incident)
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        page.goto(ack_link(token).replace(settings.PUBLIC_BASE_URL, stub_daphne), referer="")
        with page.expect_navigation():
            page.get_by_role("button", name="Acknowledge").tap()
        page.get_by_role("heading", name="Acknowledged").wait_for()
        incident.refresh_from_db()
        retry.refresh_from_db()
        assert incident.status == "acknowledged" and retry.status == "cancelled"
        assert not NotificationAttempt.objects.filter(incident=incident, status__in=["pending", "sending"]).exists()

        with page.expect_navigation():
            page.locator("#portal-link").tap()
        assert "Margaret" not in page.content()  # no PHI before the code
        with page.expect_navigation():
            page.get_by_role("button", name="Text me a code").tap()
        body = processes.wait_for(
            lambda: [m["body"] for m in stub.created("messages", to=PRIMARY) if "code:" in m["body"]]
        )
        code = re.search(r"code: (\d{6})", body[0]).group(1)
        page.locator("input[name=code]").fill(code)
        with page.expect_navigation():
            page.get_by_role("button", name="Open the incident").tap()
        page.locator("#patient-name").wait_for()
        assert page.locator("#patient-name").text_content() == "Margaret"
        assert page.locator("#patient-tel").get_attribute("href") == f"tel:{PATIENT_PHONE}"

        with page.expect_navigation():
            page.get_by_role("button", name="Call patient").tap()
        assert page.locator("#call-status").text_content().startswith("Calling you now")
    finally:
        context.close()
    [call] = stub.created("calls", to=PRIMARY)
    assert call["from"] == CLINIC_NUMBER
    assert f'<Dial callerId="{CLINIC_NUMBER}" timeout="30"><Number>{PATIENT_PHONE}</Number></Dial>' in call["twiml"]
    assert [a.action for a in PortalAccess.objects.filter(incident=incident).order_by("at")] == [
        "code_sent",
        "verified",
        "view",
        "call",
        "view",
    ]
