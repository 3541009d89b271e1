"""Acknowledgement: the /a/<token> link (GET confirm, POST ack without cookies or a same-origin Origin, the form
nonce, single use, expiry, tampering, tenant),
an SMS reply from the responder's number, and a keypress on the page call (voicemail is not an ack)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from channels_app import twilio_payloads
from conversations.models import Interaction
from escalation import services
from escalation.models import AckToken, Incident, NotificationAttempt
from escalation.services.messages import ack_token_string
from tests.escalation.conftest import BACKUP, CLINIC_NUMBER, PRIMARY
from tests.escalation.steps import call_params, call_post
from tests.factories import InteractionFactory, PhoneNumberFactory, TenantFactory

pytestmark = pytest.mark.django_db


def link_path(token):
    return f"/a/{ack_token_string(token)}"


def csrf_post(client, path, origin: str = "null"):
    """GET the confirm page, then POST its form as a browser would after ``Referrer-Policy: no-referrer``
    (``Origin: null``) — with Django's CSRF checks enforced, which the view must not need."""
    page = client.get(path)
    match = re.search(r'name="nonce" value="([^"]+)"', page.content.decode())
    return client.post(path, {"nonce": match.group(1) if match else ""}, HTTP_ORIGIN=origin)


def test_get_shows_confirm_and_changes_nothing(paged):
    incident, token = paged
    response = Client().get(link_path(token))
    assert response.status_code == 200 and b"Acknowledge" in response.content
    assert response["Cache-Control"].startswith("max-age=0") or "no-cache" in response["Cache-Control"]
    incident.refresh_from_db()
    assert incident.status == "triggered"
    token.refresh_from_db()
    assert token.used_at is None


def test_post_acknowledges_once_and_reuse_is_idempotent(paged):
    incident, token = paged
    client = Client(enforce_csrf_checks=True)
    response = csrf_post(client, link_path(token))
    assert response.status_code == 200 and b"Acknowledged" in response.content
    incident.refresh_from_db()
    assert (incident.status, incident.ack_via, incident.acknowledged_by_id) == (
        "acknowledged",
        "link",
        token.responder_id,
    )
    attempt = NotificationAttempt.objects.get(pk=token.attempt_id)
    assert attempt.acknowledged_at == incident.acknowledged_at
    again = csrf_post(client, link_path(token))
    assert again.status_code == 200 and b"Already acknowledged" in again.content
    incident.refresh_from_db()
    assert incident.acknowledged_at == attempt.acknowledged_at  # unchanged


def test_confirm_page_sets_no_cookie_and_post_needs_none(paged):
    """No ambient authority: the page sets no cookie, and a cookie-less POST from a foreign origin works."""
    incident, token = paged
    client = Client(enforce_csrf_checks=True)
    page = client.get(link_path(token))
    assert not page.cookies and page["Referrer-Policy"] == "no-referrer"
    assert (
        csrf_post(Client(enforce_csrf_checks=True), link_path(token), origin="https://evil.example").status_code == 200
    )
    incident.refresh_from_db()
    assert incident.status == "acknowledged"


@pytest.mark.parametrize("nonce", [None, "", "forged", "other-link"])
def test_post_without_the_confirm_forms_nonce_acknowledges_nothing(paged, nonce):
    """A bare POST to the link (a scanner that "clicks" by POST) or a nonce of another link: the confirm page again."""
    incident, token = paged
    if nonce == "other-link":
        nonce = services.ack_form_nonce(raw="someotherkey.mac")
    data = {} if nonce is None else {"nonce": nonce}
    response = Client(enforce_csrf_checks=True).post(link_path(token), data, HTTP_ORIGIN="null")
    assert response.status_code == 400 and b"Acknowledge</button>" in response.content
    incident.refresh_from_db()
    token.refresh_from_db()
    assert incident.status == "triggered" and token.used_at is None


def test_stale_form_nonce_is_refused(paged, monkeypatch):
    incident, token = paged
    nonce = services.ack_form_nonce(raw=ack_token_string(token))
    monkeypatch.setattr("escalation.services.acks.ACK_FORM_MAX_AGE", -1)
    response = Client().post(link_path(token), {"nonce": nonce})
    assert response.status_code == 400
    incident.refresh_from_db()
    assert incident.status == "triggered"


def test_expired_link_is_refused(paged):
    incident, token = paged
    AckToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = csrf_post(Client(enforce_csrf_checks=True), link_path(token))
    assert response.status_code == 410 and b"expired" in response.content
    incident.refresh_from_db()
    assert incident.status == "triggered"


def test_used_link_of_a_still_open_incident_is_refused(paged):
    incident, token = paged
    AckToken.objects.filter(pk=token.pk).update(used_at=timezone.now())
    response = csrf_post(Client(enforce_csrf_checks=True), link_path(token))
    assert response.status_code == 410
    incident.refresh_from_db()
    assert incident.status == "triggered"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"),  # MAC changed
        lambda s: ("y" if s[0] == "x" else "x") + s[1:],  # key changed
        lambda s: s.split(".")[0],  # MAC missing
        lambda s: "nonsense",
    ],
)
def test_tampered_link_is_refused(paged, mangle):
    incident, token = paged
    path = f"/a/{mangle(ack_token_string(token))}"
    assert Client().get(path).status_code == 404
    assert csrf_post(Client(enforce_csrf_checks=True), path).status_code == 404
    incident.refresh_from_db()
    assert incident.status == "triggered"


def test_token_rebound_to_another_tenant_is_refused(paged):
    """A genuine token moved to another tenant's incident (a DB edit, a mix-up) no longer verifies."""
    incident, token = paged
    other = TenantFactory()
    PhoneNumberFactory(tenant=other, number="+15550100009")
    other_interaction = InteractionFactory(conversation__tenant=other, conversation__customer__tenant=other)
    other_incident = Incident.objects.create(
        tenant=other,
        interaction=other_interaction,
        urgency=5,
        reason="x",
        raised_at=timezone.now(),
        next_step_at=timezone.now(),
    )
    raw = ack_token_string(token)
    AckToken.objects.filter(pk=token.pk).update(tenant=other, incident=other_incident)
    assert csrf_post(Client(enforce_csrf_checks=True), f"/a/{raw}").status_code == 404
    other_incident.refresh_from_db()
    incident.refresh_from_db()
    assert other_incident.status == "triggered" and incident.status == "triggered"


def inbound_sms(tenant, from_, body):
    return twilio_payloads.inbound_sms(account_sid=tenant.twilio_account_sid, from_=from_, to=CLINIC_NUMBER, body=body)


def test_sms_reply_ack_from_responder_is_claimed(paged, twilio_post):
    incident, token = paged
    before = Interaction.objects.count()
    response = twilio_post("/twilio/sms/", inbound_sms(incident.tenant, PRIMARY, " ack "), tenant=incident.tenant)
    assert response.status_code == 200
    incident.refresh_from_db()
    assert (incident.status, incident.ack_via, incident.acknowledged_by.phone) == ("acknowledged", "sms", PRIMARY)
    assert Interaction.objects.count() == before  # never reached the patient flow


def test_sms_reply_from_someone_else_is_not_an_ack(paged, twilio_post):
    incident, _ = paged
    twilio_post("/twilio/sms/", inbound_sms(incident.tenant, "+15551239999", "ACK"), tenant=incident.tenant)
    twilio_post("/twilio/sms/", inbound_sms(incident.tenant, PRIMARY, "who is this?"), tenant=incident.tenant)
    incident.refresh_from_db()
    assert incident.status == "triggered"


def test_keypress_1_acknowledges(paged, client):
    incident, _ = paged
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    prompt = call_post(
        client, f"/twilio/escalation/call/{call.pk}/", incident.tenant, call_params(incident.tenant, call)
    )
    assert prompt.status_code == 200 and b'numDigits="1"' in prompt.content and b"Press 1" in prompt.content
    path = f"/twilio/escalation/call/{call.pk}/gather/?round=1"
    wrong = call_post(client, path, incident.tenant, call_params(incident.tenant, call, Digits="3"))
    assert b"<Gather" in wrong.content
    incident.refresh_from_db()
    assert incident.status == "triggered"
    ok = call_post(client, path, incident.tenant, call_params(incident.tenant, call, Digits="1"))
    assert ok.status_code == 200 and b"Acknowledged" in ok.content
    incident.refresh_from_db()
    assert (incident.status, incident.ack_via) == ("acknowledged", "keypress")
    assert set(NotificationAttempt.objects.filter(incident=incident).values_list("acknowledged_at", flat=True)) != {
        None
    }


def test_voicemail_is_not_an_ack(paged, client):
    incident, _ = paged
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    machine = call_post(
        client,
        f"/twilio/escalation/call/{call.pk}/",
        incident.tenant,
        call_params(incident.tenant, call, AnsweredBy="machine_end_beep"),
    )
    assert b"<Hangup" in machine.content and b"<Gather" not in machine.content and b"<Say" not in machine.content
    for status in ("in-progress", "completed"):
        call_post(
            client,
            f"/twilio/escalation/status/{call.pk}/",
            incident.tenant,
            call_params(incident.tenant, call, CallStatus=status),
        )
    incident.refresh_from_db()
    call.refresh_from_db()
    # nobody was reached: the call failed (the SMS is still out, so the step waits for it)
    assert incident.status == "triggered" and call.provider_status == "completed"
    assert (call.status, call.error_code) == ("failed", "answering-machine")


def test_call_webhooks_are_signed_and_tenant_scoped(paged, client, other_tenant):
    incident, _ = paged
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    path = f"/twilio/escalation/call/{call.pk}/gather/"
    unsigned = client.post(path, call_params(incident.tenant, call, Digits="1"))
    assert unsigned.status_code == 403
    # signed by another tenant, from that tenant's number: the attempt is not theirs
    params = {**call_params(other_tenant, call, Digits="1"), "From": "+15550100002"}
    assert call_post(client, path, other_tenant, params).status_code == 404
    # a CallSid that is not the attempt's
    assert (
        call_post(
            client, path, incident.tenant, call_params(incident.tenant, call, Digits="1", CallSid="CA" + "0" * 32)
        ).status_code
        == 404
    )
    incident.refresh_from_db()
    assert incident.status == "triggered"


def test_status_callbacks_move_forward_only(paged, client):
    incident, _ = paged
    sms = NotificationAttempt.objects.get(incident=incident, channel="sms")
    base = {
        "AccountSid": incident.tenant.twilio_account_sid,
        "MessageSid": sms.provider_sid,
        "From": CLINIC_NUMBER,
        "To": sms.to_number,
    }
    for status in ("delivered", "sent", "queued"):
        call_post(client, f"/twilio/escalation/status/{sms.pk}/", incident.tenant, {**base, "MessageStatus": status})
    sms.refresh_from_db()
    assert (sms.status, sms.provider_status) == ("delivered", "delivered")


def test_unanswered_call_and_undelivered_sms_fall_through(paged, client):
    incident, _ = paged
    for attempt in NotificationAttempt.objects.filter(incident=incident):
        key = "MessageStatus" if attempt.channel == "sms" else "CallStatus"
        sid = "MessageSid" if attempt.channel == "sms" else "CallSid"
        status = "undelivered" if attempt.channel == "sms" else "no-answer"
        call_post(
            client,
            f"/twilio/escalation/status/{attempt.pk}/",
            incident.tenant,
            {
                "AccountSid": incident.tenant.twilio_account_sid,
                sid: attempt.provider_sid,
                "From": CLINIC_NUMBER,
                "To": attempt.to_number,
                key: status,
            },
        )
    incident.refresh_from_db()
    assert incident.next_step_at <= timezone.now()
    assert set(NotificationAttempt.objects.filter(incident=incident).values_list("status", flat=True)) == {"failed"}
    nxt = services.incident_run_step(incident_id=incident.pk, fence=incident.fence, dispatch=False)
    assert {o.attempt.to_number for o in nxt.outbound} == {BACKUP}  # the backup is paged without waiting


def test_late_sms_ack_after_someone_else_acknowledged_is_still_claimed(paged, twilio_post):
    incident, _ = paged
    services.incident_acknowledge(incident=incident, responder=None, via="admin")
    before = Interaction.objects.count()
    twilio_post("/twilio/sms/", inbound_sms(incident.tenant, PRIMARY, "1"), tenant=incident.tenant)
    assert Interaction.objects.count() == before
    incident.refresh_from_db()
    assert incident.ack_via == "admin"


def test_keypress_2_on_the_page_call_acknowledges_and_dials_the_patient_from_the_clinic_number(paged, client):
    from tests.escalation.conftest import PATIENT_PHONE

    incident, _ = paged
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    prompt = call_post(
        client, f"/twilio/escalation/call/{call.pk}/", incident.tenant, call_params(incident.tenant, call)
    )
    assert b"Press 2 to be connected to the patient" in prompt.content
    path = f"/twilio/escalation/call/{call.pk}/gather/?round=1"
    bridge = call_post(client, path, incident.tenant, call_params(incident.tenant, call, Digits="2"))
    assert f'<Dial callerId="{CLINIC_NUMBER}" timeout="30"><Number>{PATIENT_PHONE}</Number></Dial>'.encode() in (
        bridge.content
    )
    incident.refresh_from_db()
    assert (incident.status, incident.ack_via, incident.acknowledged_by.phone) == ("acknowledged", "keypress", PRIMARY)
