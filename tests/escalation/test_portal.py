"""The responder portal behind the ack link: no PHI before the responder who acknowledged proves it is them
(a texted code or their staff login); expired, reused-by-a-colleague, tampered or other-tenant links show none;
every view recorded; "Call patient" bridges from the clinic's number."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from escalation import services
from escalation.models import AckToken, PortalAccess, PortalCode
from escalation.services.messages import ack_token_string
from escalation.services.portal import CODE_TRIES
from tests.escalation.conftest import CLINIC_NUMBER, PATIENT_DOB, PATIENT_PHONE, PRIMARY, SYMPTOM

pytestmark = pytest.mark.django_db
PHI = ("Margaret", PATIENT_PHONE, SYMPTOM, PATIENT_DOB)


def portal_path(token):
    return f"/a/{ack_token_string(token)}/portal"


def has_phi(response) -> bool:
    text = response.content.decode()
    return any(secret in text for secret in PHI)


@pytest.fixture
def acked(paged, twilio_stub):
    incident, token = paged
    services.incident_acknowledge(incident=incident, responder=token.responder, via="link")
    return incident, token


def texted_code(stub) -> str:
    body = [m["body"] for m in stub.created("messages", to=PRIMARY) if "code:" in m["body"]][-1]
    assert "Margaret" not in body and SYMPTOM not in body
    return re.search(r"code: (\d{6})", body).group(1)


def open_with_code(client, token, stub):
    path = portal_path(token)
    assert client.post(path, {"action": "send"}).status_code == 200
    return client.post(path, {"action": "verify", "code": texted_code(stub)})


def test_code_opens_the_portal_with_phi_and_every_view_is_recorded(acked, twilio_stub):
    incident, token = acked
    client = Client(enforce_csrf_checks=False)
    page = client.get(portal_path(token))
    assert page.status_code == 200 and b"Text me a code" in page.content and not has_phi(page)
    response = open_with_code(client, token, twilio_stub)
    assert response.status_code == 302
    cookie = response.cookies["cs_portal"]
    assert cookie["httponly"] and cookie["path"] == portal_path(token) and cookie["samesite"] == "Lax"
    page = client.get(portal_path(token))
    text = page.content.decode()
    assert page.status_code == 200 and '<strong id="patient-name">Margaret</strong>' in text  # first name only
    assert f'href="tel:{PATIENT_PHONE}"' in text and SYMPTOM in text and page["Referrer-Policy"] == "same-origin"
    actions = list(PortalAccess.objects.filter(incident=incident).values_list("action", flat=True).order_by("at"))
    assert actions == ["code_sent", "verified", "view"]
    assert PortalAccess.objects.get(action="view").responder_id == token.responder_id


def test_wrong_codes_are_limited_and_show_no_phi(acked, twilio_stub):
    _, token = acked
    client = Client()
    client.post(portal_path(token), {"action": "send"})
    good = texted_code(twilio_stub)
    bad = "000000" if good != "000000" else "111111"
    for _ in range(CODE_TRIES):
        response = client.post(portal_path(token), {"action": "verify", "code": bad})
        assert response.status_code == 200 and b"wrong or has expired" in response.content and not has_phi(response)
    response = client.post(portal_path(token), {"action": "verify", "code": good})  # locked now
    assert response.status_code == 200 and not has_phi(response)


def test_an_expired_code_and_a_resend_within_30_s(acked, twilio_stub):
    _, token = acked
    client = Client()
    client.post(portal_path(token), {"action": "send"})
    assert b"less than 30 seconds" in client.post(portal_path(token), {"action": "send"}).content
    PortalCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.post(portal_path(token), {"action": "verify", "code": texted_code(twilio_stub)}).status_code == 200
    assert not has_phi(client.get(portal_path(token)))


def test_no_phi_before_the_ack_or_for_a_colleagues_link(paged, oncall, twilio_stub):
    incident, token = paged
    client = Client()
    response = client.get(portal_path(token))
    assert response.status_code == 403 and not has_phi(response)
    assert client.post(portal_path(token), {"action": "send"}).status_code == 403
    assert not twilio_stub.created("messages")  # no code is sent for an unacknowledged page
    services.incident_acknowledge(incident=incident, responder=oncall["backup"], via="sms")
    response = client.get(portal_path(token))  # the primary's link; the backup acknowledged
    assert response.status_code == 403 and not has_phi(response)


def test_expired_tampered_and_other_tenant_links_show_no_phi(acked, twilio_stub):
    _, token = acked
    client = Client()
    open_with_code(client, token, twilio_stub)
    assert has_phi(client.get(portal_path(token)))
    AckToken.objects.filter(pk=token.pk).update(created_at=timezone.now() - timedelta(hours=12, seconds=1))
    response = client.get(portal_path(token))
    assert response.status_code == 410 and not has_phi(response)  # even with a verified cookie
    raw = ack_token_string(token)
    assert client.get(f"/a/{raw[:-1]}{'A' if raw[-1] != 'A' else 'B'}/portal").status_code == 404


def test_a_cookie_of_another_link_does_not_open_this_one(acked, twilio_stub):
    _, token = acked
    client = Client()
    cookie = open_with_code(client, token, twilio_stub).cookies["cs_portal"].value
    other = Client()
    other.cookies["cs_portal"] = cookie + "x"
    assert not has_phi(other.get(portal_path(token)))


def test_the_responders_staff_login_opens_it_without_a_code(acked, twilio_stub):
    _, token = acked
    user = get_user_model().objects.create_user("chen", password="x", is_staff=True)
    token.responder.user = user
    token.responder.save(update_fields=["user"])
    client = Client()
    assert not has_phi(client.get(portal_path(token)))
    client.force_login(user)
    assert has_phi(client.get(portal_path(token)))
    stranger = get_user_model().objects.create_user("other", password="x", is_staff=True)
    client.force_login(stranger)
    assert not has_phi(client.get(portal_path(token)))


def test_call_patient_bridges_from_the_clinic_number_and_lands_in_both_timelines(acked, twilio_stub):
    incident, token = acked
    client = Client()
    open_with_code(client, token, twilio_stub)
    page = client.post(portal_path(token), {"action": "call"})
    assert b"Calling you now" in page.content
    [call] = twilio_stub.created("calls", to=PRIMARY)
    assert call["from"] == CLINIC_NUMBER
    assert f'<Dial callerId="{CLINIC_NUMBER}" timeout="30"><Number>{PATIENT_PHONE}</Number></Dial>' in call["twiml"]
    assert PortalAccess.objects.get(action="call").detail == call["sid"]
    from conversations.models import Interaction

    row = Interaction.objects.get(customer_id=incident.customer_id, metadata__has_key="bridge_call_sids")
    assert (row.channel, row.direction) == ("voice", "outbound")
    assert row.metadata["bridge_call_sids"] == [call["sid"]]


def test_resolve_from_the_portal(acked, twilio_stub):
    incident, token = acked
    client = Client()
    open_with_code(client, token, twilio_stub)
    client.post(portal_path(token), {"action": "resolve", "note": "sent to ER"})
    incident.refresh_from_db()
    assert incident.resolved_at and incident.resolution_note == "sent to ER" and incident.resolved_via == "link"


def test_portal_forms_are_csrf_protected(acked, twilio_stub):
    _, token = acked
    response = Client(enforce_csrf_checks=True).post(portal_path(token), {"action": "send"}, HTTP_ORIGIN="null")
    assert response.status_code == 403 and not twilio_stub.created("messages")
