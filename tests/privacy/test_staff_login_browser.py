"""Two-factor sign-in in a real Chromium at phone size, against daphne: a clinic admin signs in with a password,
scans (reads) the QR page's key, types the code and lands in the live inbox; the next sign-in asks for a code;
a session that has not given one cannot open the inbox websocket. Every page is checked for CSP violations
(the inbox and dashboard inline scripts carry the nonce; plotly and the widget load under the policy)."""

from __future__ import annotations

from base64 import b32decode

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django_otp.oath import totp

from channels_app.chat.views import DEMO_SLUG
from identity.models import TenantMembership
from identity.roles import role_group
from tests.factories import TenantFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {"viewport": {"width": 375, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
PASSWORD = "Jacaranda-Piñata-2031"


def code(secret: str, *, ahead: int = 0) -> str:
    """What the authenticator app shows for the key on the page (``ahead`` 30-second steps later)."""
    return f"{totp(b32decode(secret.replace(' ', '')), step=30, t0=-30 * ahead, digits=6):06d}"


def clinic_admin(tenant, username: str):
    """A clinic admin whose password daphne (production hashers) can check."""
    user = get_user_model().objects.create(
        username=username, first_name="Inés", is_staff=True, password=PBKDF2PasswordHasher().encode(PASSWORD, "s4lt")
    )
    TenantMembership.objects.create(user=user, tenant=tenant, role="admin")
    user.groups.add(role_group("admin"))
    return user


def watch_csp(page) -> list[str]:
    """Console reports of Content-Security-Policy violations on ``page`` (Chromium logs each one)."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None)
    return seen


def sign_in(page, base: str, username: str) -> None:
    page.goto(base + "/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.locator("input[type=submit]").tap()


def inbox_socket_close_code(page) -> int | None:
    """Open ``/ws/inbox/`` from the page: None when accepted, else the close code (1006: handshake refused)."""
    return page.evaluate(
        """() => new Promise(resolve => {
            const ws = new WebSocket("ws://" + location.host + "/ws/inbox/");
            ws.onopen = () => { ws.close(); resolve(null); };
            ws.onclose = e => resolve(e.code);
        })"""
    )


def test_clinic_admin_enrols_then_signs_in_with_a_code(daphne, browser):
    tenant = TenantFactory(slug=DEMO_SLUG, allowed_widget_origins=[daphne])
    clinic_admin(tenant, "ines.admin")

    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        violations = watch_csp(page)
        sign_in(page, daphne, "ines.admin")
        assert "/admin/otp/setup/" in page.url
        qr = page.locator("#cs-otp-qr svg")
        qr.wait_for(timeout=20000)
        box = qr.bounding_box()
        assert 100 <= box["width"] <= 375 and box["x"] >= 0  # scannable, and fits a phone screen
        assert inbox_socket_close_code(page) is not None  # password alone: handshake refused, no live events
        secret = page.locator("#cs-otp-secret").text_content()
        page.fill("#id_token", "123 456" if code(secret) != "123456" else "654 321")
        with page.expect_navigation():
            page.locator("#cs-otp-submit").tap()
        assert "did not match" in page.locator(".errorlist").text_content()
        page.wait_for_timeout(1500)  # django-otp refuses codes for a moment after a wrong one; a person reads first
        page.fill("#id_token", code(secret))
        with page.expect_navigation():
            page.locator("#cs-otp-submit").tap()
        assert "/admin/conversations/inboxconversation/" in page.url  # where staff land after signing in
        page.locator("#cs-live.on").wait_for(timeout=20000)  # the inline script ran (nonce) and the socket opened

        page.goto(daphne + "/admin/conversations/dashboard/")
        page.wait_for_function("() => window.Plotly !== undefined", timeout=20000)
        page.goto(daphne + "/demo/")
        page.locator("#callsphere-widget .cs-launcher").wait_for(timeout=20000)
        assert violations == []
    finally:
        context.close()

    # the next sign-in, on another phone: a code is asked for, a password alone is not enough
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        violations = watch_csp(page)
        sign_in(page, daphne, "ines.admin")
        assert "/admin/otp/verify/" in page.url
        page.goto(daphne + "/admin/identity/customer/")
        assert "/admin/otp/verify/" in page.url
        page.fill("#id_token", code(secret, ahead=1))  # the next 30-s step's code: within drift, never a replay
        with page.expect_navigation():
            page.locator("#cs-otp-submit").tap()
        assert page.url.endswith("/admin/identity/customer/")
        assert inbox_socket_close_code(page) is None
        assert violations == []
    finally:
        context.close()
