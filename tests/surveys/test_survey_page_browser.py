"""The emailed survey link opened as a patient opens it: tapped in the message on a phone (real Chromium, 375 px),
in the patient's language (Spanish here), answered once even when the message was opened twice; an expired link
and a mangled one each give a clear page (issue 15, CSAT)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest
from django.core import signing

from channels_app.surveys import survey_ask, survey_link
from conversations.models import ChannelMessage, Interaction, SatisfactionSurvey
from conversations.services import interaction_close, session_open
from identity.services import customer_resolve
from tests.factories import TenantFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 375, "height": 740}
PUBLIC = "https://clinic.example.com"  # PUBLIC_BASE_URL of the test settings: the daphne below serves it


def _closed_email_session(tenant, email: str, language: str) -> Interaction:
    customer = customer_resolve(tenant=tenant, email=email, verified_kinds=("email",)).customer
    customer.preferred_language = language
    customer.save(update_fields=["preferred_language"])
    row, _ = session_open(tenant=tenant, customer=customer, channel="email")
    Interaction.objects.filter(pk=row.pk).update(
        transcript=[
            {"role": "customer", "text": "¿Puedo llevar a mis hijos a la cita?", "at": "2026-12-01T15:00:00+00:00"},
            {"role": "agent", "text": "Sí, claro.", "at": "2026-12-01T15:00:05+00:00"},
        ]
    )
    interaction_close(interaction=row)
    return row


def _survey_in_worker_thread(tenant, email: str, language: str):
    """Close the session and ask the survey as the worker does (Playwright holds an event loop in the test's
    thread)."""
    from django.db import connection

    def run():
        try:
            row = _closed_email_session(tenant, email, language)
            return survey_ask(interaction_id=row.pk), row
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result(timeout=30)


def _links_in_message(survey) -> list[str]:
    body = ChannelMessage.objects.get(idempotency_key=f"survey:{survey.pk}:email").body
    return re.findall(r"https://\S+", body)


def _tap(page, base: str, link: str):
    """The patient taps ``link`` in the message (the public name of the server is daphne in this test)."""
    assert link.startswith(PUBLIC + "/s/")
    return page.goto(base + link.removeprefix(PUBLIC))


def test_spanish_patient_answers_the_emailed_survey_once_on_a_phone(daphne, browser):
    tenant = TenantFactory(name="Clínica Sol")
    survey, row = _survey_in_worker_thread(tenant, "marisol@example.com", "es")
    assert survey is not None and survey.channel == "email"
    links = _links_in_message(survey)
    assert len(links) == 5 and links[1].endswith("?score=4")

    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="en-US")
    first, second = context.new_page(), context.new_page()  # she opened the email twice
    for page in (first, second):
        response = _tap(page, daphne, links[1])
        assert response.status == 200 and response.headers["content-language"] == "es"
        assert page.locator("html").get_attribute("lang") == "es"  # her language, not the phone's
        page.get_by_role("heading", name="¿Qué tal le atendimos?").wait_for()
        assert page.locator("input[name=score][value='4']").is_checked()
    send = first.get_by_role("button", name="Enviar mi puntuación")
    box = send.bounding_box()
    assert box["height"] >= 44 and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    star = first.locator("label").nth(4).bounding_box()
    assert star["x"] + star["width"] <= PHONE["width"]  # five scores fit the phone's width
    survey.refresh_from_db()
    assert survey.status == "asked"  # opening the link (or a mail scanner doing so) records nothing

    send.tap()
    first.get_by_role("heading", name="¡Gracias!").wait_for()
    assert "Nos ha dado 4 de 5" in first.content()

    second.locator("label").nth(0).tap()  # the other tab: a different score, sent again
    second.get_by_role("button", name="Enviar mi puntuación").tap()
    second.get_by_role("heading", name="Gracias").wait_for()
    assert "Ya tenemos su respuesta" in second.content()

    reopened = context.new_page()
    _tap(reopened, daphne, links[4])  # days later, the "1" link from the same email: a used link
    reopened.get_by_role("heading", name="Gracias").wait_for()
    assert "Ya tenemos su respuesta" in reopened.content()
    assert reopened.locator("form").count() == 0
    context.close()

    survey.refresh_from_db()
    row.refresh_from_db()
    assert (survey.status, survey.score) == ("answered", 4)
    assert (row.satisfaction, row.satisfaction_source) == (4, "survey")


def test_an_expired_or_mangled_survey_link_gives_a_clear_page(daphne, browser):
    tenant = TenantFactory(name="Clínica Sol")
    survey, _row = _survey_in_worker_thread(tenant, "luis@example.com", "es")
    old = int(time.time()) - 15 * 24 * 3600  # the email was sent 15 days ago; links last 14
    with mock.patch.object(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(old)):
        expired = survey_link(survey, 5)

    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="es-ES")
    page = context.new_page()
    response = _tap(page, daphne, expired)
    assert response.status == 410
    page.get_by_role("heading", name="Esta encuesta ya está cerrada").wait_for()
    assert "14 días" in page.content() and page.locator("form").count() == 0

    mangled = _links_in_message(survey)[0][:-12]  # the mail app cut the link short
    response = _tap(page, daphne, mangled)
    assert response.status == 404
    page.get_by_role("heading", name="Enlace no válido").wait_for()  # no survey named: the phone's language
    context.close()

    survey.refresh_from_db()
    assert (survey.status, survey.score) == ("asked", None)
    assert SatisfactionSurvey.objects.count() == 1
