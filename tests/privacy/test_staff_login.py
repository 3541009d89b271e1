"""Staff accounts fit for PHI: lockout after repeated failures (django-axes), TOTP two-factor required for clinic
admins and superusers, optional per clinic for staff (django-otp), and the CSP header on each page type."""

from __future__ import annotations

from base64 import b32decode

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from channels_app.chat.links import chat_link_url
from channels_app.chat.views import DEMO_SLUG
from escalation.services.messages import ack_link
from identity.models import AuditEvent, TenantMembership
from identity.staff import staff_member_create
from tests.conftest import force_login_password_only
from tests.escalation.conftest import esc_tenant, oncall, paged, patient_interaction  # noqa: F401 - fixtures
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/"
User = get_user_model()


def member(tenant, username: str, role: str = "staff", password: str = "Marigold-Lantern-58"):
    user = User(username=username, first_name=username.title())
    user.set_password(password)
    staff_member_create(tenant=tenant, user=user, role=role)
    return user


def code_for(device: TOTPDevice, *, ahead: int = 0) -> str:
    """The code the user's authenticator app shows now (``ahead`` steps later)."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0 - ahead * device.step, digits=device.digits):06d}"


def code_from_secret(secret: str) -> str:
    """What an authenticator app computes from the base32 key typed in by hand (spaces as shown on the page)."""
    return f"{totp(b32decode(secret.replace(' ', '')), step=30, t0=0, digits=6):06d}"


# --- lockout ---------------------------------------------------------------------------------------------


def test_lockout_after_repeated_failures_even_for_the_right_password(tenant, client, settings):
    settings.AXES_FAILURE_LIMIT = 4
    member(tenant, "rosalind")
    for guess in ["marigold-lantern-58", "Marigold Lantern 58", "Marigold-Lantern-85"]:
        response = client.post(LOGIN, {"username": "rosalind", "password": guess})
        assert response.status_code == 200 and "_auth_user_id" not in client.session  # the form again
    response = client.post(LOGIN, {"username": "rosalind", "password": "Marigold-Lanterm-58"})
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert int(response["Retry-After"]) == 15 * 60
    response = client.post(LOGIN, {"username": "rosalind", "password": "Marigold-Lantern-58"})
    assert response.status_code == 429 and "_auth_user_id" not in client.session


def test_lockout_is_per_username_and_a_success_resets_the_count(tenant, client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    member(tenant, "rosalind")
    member(tenant, "tomás")
    for _ in range(3):
        client.post(LOGIN, {"username": "rosalind", "password": "contraseña-equivocada"})
    assert client.post(LOGIN, {"username": "rosalind", "password": "Marigold-Lantern-58"}).status_code == 429
    # another login from the same address is not locked out, and its success clears its earlier failures
    for _ in range(2):
        client.post(LOGIN, {"username": "tomás", "password": "oops 🙃"})
    assert client.post(LOGIN, {"username": "tomás", "password": "Marigold-Lantern-58"}).status_code == 302
    client.logout()
    for _ in range(2):
        client.post(LOGIN, {"username": "tomás", "password": "oops again"})
    assert client.post(LOGIN, {"username": "tomás", "password": "Marigold-Lantern-58"}).status_code == 302


# --- two-factor gate -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "superuser"])
def test_clinic_admin_and_superuser_must_enrol_before_admin_or_api(tenant, client, role):
    if role == "superuser":
        user = User.objects.create_superuser("root-op", password="Quince-Orchard-77")
    else:
        user = member(tenant, "boss", role="admin")
    force_login_password_only(client, user)
    for url in ["/admin/", "/admin/identity/customer/", "/admin/conversations/inboxconversation/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/otp/setup/?next="), url
    response = client.get("/api/v1/interactions/")
    assert response.status_code == 403 and "Two-factor" in response.json()["detail"]
    # another Authorization scheme does not slip the session past the gate
    response = client.get("/api/v1/interactions/", HTTP_AUTHORIZATION="Basic Ym9zczpwdw==")
    assert response.status_code == 403 and "Two-factor" in response.json()["detail"]
    # a made-up API key is judged as an API key (refused), never as the half-signed-in session
    response = client.get("/api/v1/interactions/", HTTP_AUTHORIZATION="Bearer not-a-real-key")
    assert response.status_code in (401, 403) and "results" not in response.json()


def test_staff_need_a_second_factor_only_when_their_clinic_requires_it(tenant, client):
    desk = member(tenant, "front-desk")
    force_login_password_only(client, desk)
    assert client.get("/admin/").status_code == 200
    tenant.require_staff_otp = True
    tenant.save(update_fields=["require_staff_otp"])
    force_login_password_only(client, desk)
    assert client.get("/admin/")["Location"].startswith("/admin/otp/setup/")


def test_enrolment_shows_a_qr_code_and_a_wrong_code_changes_nothing(tenant, client):
    boss = member(tenant, "boss", role="admin")
    force_login_password_only(client, boss)
    page = client.get("/admin/otp/setup/?next=/admin/identity/customer/")
    body = page.content.decode()
    assert page.status_code == 200 and "<svg" in body and 'id="cs-otp-secret"' in body
    device = TOTPDevice.objects.get(user=boss)
    assert not device.confirmed
    wrong = f"{(int(code_for(device)) + 1) % 1_000_000:06d}"
    response = client.post("/admin/otp/setup/", {"token": wrong, "next": "/admin/identity/customer/"})
    assert response.status_code == 400 and "did not match" in response.content.decode()
    response = client.post("/admin/otp/setup/", {"token": "12a456", "next": "/admin/identity/customer/"})
    assert response.status_code == 400 and "Enter the 6 digits" in response.content.decode()
    device.refresh_from_db()
    assert not device.confirmed and client.get("/admin/").status_code == 302
    # the same secret is shown again (the app the user already scanned stays valid)
    assert TOTPDevice.objects.filter(user=boss).count() == 1


def test_enrolment_with_the_right_code_verifies_the_session(tenant, client):
    boss = member(tenant, "boss", role="admin")
    force_login_password_only(client, boss)
    client.get("/admin/otp/setup/")
    device = TOTPDevice.objects.get(user=boss)
    response = client.post(
        "/admin/otp/setup/", {"token": code_for(device)[:3] + " " + code_for(device)[3:], "next": "/admin/"}
    )
    assert response.status_code == 302 and response["Location"] == "/admin/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/identity/customer/").status_code == 200
    assert client.get("/api/v1/interactions/").status_code != 403
    event = AuditEvent.objects.get(action="account.otp_enrolled")
    assert event.actor_user_id == boss.pk


def test_next_sign_in_asks_for_a_code_and_a_password_alone_cannot_swap_the_device(tenant, client):
    boss = member(tenant, "boss", role="admin")
    device = TOTPDevice.objects.create(user=boss, name="Pixel", confirmed=True)
    response = client.post(LOGIN, {"username": "boss", "password": "Marigold-Lantern-58", "next": "/admin/"})
    assert response.status_code == 302
    response = client.get("/admin/")
    assert response["Location"].startswith("/admin/otp/verify/")
    # enrolling another authenticator needs the current one first
    assert client.get("/admin/otp/setup/")["Location"].startswith("/admin/otp/verify/")
    assert client.post("/admin/otp/verify/", {"token": "000000", "next": "/admin/"}).status_code == 400
    device.throttle_reset()  # django-otp delays the next try after a failure; the user waits those seconds
    response = client.post("/admin/otp/verify/", {"token": code_for(device), "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"  # never an off-site redirect
    assert client.get("/admin/").status_code == 200


def test_a_stolen_code_cannot_be_replayed(tenant, client):
    boss = member(tenant, "boss", role="admin")
    device = TOTPDevice.objects.create(user=boss, name="Pixel", confirmed=True)
    code = code_for(device)
    force_login_password_only(client, boss)
    assert client.post("/admin/otp/verify/", {"token": code}).status_code == 302
    force_login_password_only(client, boss)
    assert client.post("/admin/otp/verify/", {"token": code}).status_code == 400


def test_existing_admin_tests_get_verified_sessions(tenant, client):
    """tests/conftest.py: ``client.force_login`` behaves like a password *and* a code."""
    boss = member(tenant, "boss", role="admin")
    client.force_login(boss)
    assert client.get("/admin/").status_code == 200
    assert TenantMembership.objects.get(user=boss).role == "admin"


def test_code_typed_from_the_manual_key_works(tenant, client):
    boss = member(tenant, "boss", role="admin")
    force_login_password_only(client, boss)
    body = client.get("/admin/otp/setup/").content.decode()
    secret = body.split('id="cs-otp-secret">', 1)[1].split("<", 1)[0]
    assert client.post("/admin/otp/setup/", {"token": code_from_secret(secret)}).status_code == 302


# --- Content-Security-Policy ---------------------------------------------------------------------------------


def _csp(response) -> str:
    return response["Content-Security-Policy"]


def test_csp_header_on_admin_inbox_widget_host_chat_link_and_ack_pages(client, esc_tenant, paged):  # noqa: F811
    incident, token = paged
    patient_row = incident.interaction
    boss = member(esc_tenant, "boss", role="admin")
    TenantFactory(slug=DEMO_SLUG)
    pages = {"login": client.get(LOGIN)}
    client.force_login(boss)
    pages["admin"] = client.get("/admin/identity/customer/")
    pages["inbox"] = client.get(f"/admin/conversations/inboxconversation/{patient_row.conversation_id}/change/")
    pages["otp"] = client.get("/admin/otp/verify/")
    pages["widget host"] = client.get("/demo/")
    pages["chat link"] = client.get(chat_link_url(customer=patient_row.customer).replace(settings.PUBLIC_BASE_URL, ""))
    pages["ack"] = client.get(ack_link(token).replace(settings.PUBLIC_BASE_URL, ""))
    for name, response in pages.items():
        assert response.status_code == 200, name
        policy = _csp(response)
        assert "default-src 'self'" in policy and "script-src 'self'" in policy and "object-src 'none'" in policy, name
        assert "frame-ancestors 'none'" in policy and "'unsafe-eval'" not in policy, name
    inbox = pages["inbox"]
    nonce = _csp(inbox).split("'nonce-", 1)[1].split("'", 1)[0]
    assert len(nonce) >= 16 and f'<script nonce="{nonce}">' in inbox.content.decode()
    again = client.get(f"/admin/conversations/inboxconversation/{patient_row.conversation_id}/change/")
    assert nonce not in _csp(again)  # a fresh nonce per response
