"""A clinic admin connects HubSpot from a phone-sized Chromium: admin sign-in → "Connect HubSpot" → HubSpot's
consent screen (the local stub) → "Connect app" → back on the connection page, tokens stored encrypted."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from crm.models import CrmConnection
from identity.staff import staff_member_create
from tests.factories import TenantFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


def test_clinic_admin_connects_hubspot_on_a_phone(crm_daphne, browser, hubspot_for_daphne, django_user_model):
    tenant = TenantFactory(name="Clínica Sol — Hialeah")
    user = django_user_model(username="dra.nuñez", email="dra.nunez@clinica-sol.example")
    # daphne runs production settings (PBKDF2); the test settings' fast MD5 hasher is unknown there
    user.password = PBKDF2PasswordHasher().encode("girasol-2026-ñ", PBKDF2PasswordHasher().salt())
    staff_member_create(tenant=tenant, user=user, role="admin")
    device = TOTPDevice.objects.create(user=user, name="Phone", confirmed=True)  # clinic admins use two-factor

    page = browser.new_page(viewport=PHONE)
    try:
        page.goto(crm_daphne + "/admin/crm/crmconnection/")
        page.fill("#id_username", "dra.nuñez")
        page.fill("#id_password", "girasol-2026-ñ")
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/otp/verify/**")
        page.fill("#id_token", f"{totp(device.bin_key, step=30, t0=-30, digits=6):06d}")  # next step: never a replay
        page.click("#cs-otp-submit")
        page.get_by_role("link", name="Connect HubSpot").click()
        page.wait_for_selector("#grant")
        assert "crm.objects.contacts.write" in page.content()
        page.click("#grant")
        page.wait_for_selector("text=HubSpot is connected")
        connection = CrmConnection.objects.get(tenant=tenant, provider="hubspot")
        assert page.url.endswith(f"/admin/crm/crmconnection/{connection.pk}/change/")
        assert connection.status == "active" and connection.access_token in hubspot_for_daphne.valid_tokens
        assert connection.refresh_token == "rt-1"
        assert connection.access_token not in page.content()
    finally:
        page.close()
