"""A clinic admin connects HubSpot from a phone-sized Chromium: admin sign-in → "Connect HubSpot" → HubSpot's
consent screen (the local stub) → "Connect app" → back on the connection page, tokens stored encrypted."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from crm.models import CrmConnection
from identity.staff import staff_member_create
from tests import processes
from tests.chat.conftest import browser  # noqa: F401  (the module-scoped Chromium fixture)
from tests.crm.stub import HubSpotStub
from tests.factories import TenantFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def hubspot_stub():
    stub = HubSpotStub()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def daphne(django_db_setup, django_db_blocker, tmp_path_factory, hubspot_stub):
    with django_db_blocker.unblock():
        proc, base = processes.start_daphne(
            log_path=tmp_path_factory.mktemp("daphne") / "daphne.log",
            CRM_HUBSPOT_CLIENT_ID="hs-client-id",
            CRM_HUBSPOT_CLIENT_SECRET="hs-client-secret",
            CRM_HUBSPOT_API_BASE=hubspot_stub.base,
            CRM_HUBSPOT_AUTHORIZE_URL=hubspot_stub.base + "/oauth/authorize",
        )
    hubspot_stub.redirect_base = base
    yield base
    processes.stop(proc)


def test_clinic_admin_connects_hubspot_on_a_phone(daphne, browser, hubspot_stub, django_user_model):  # noqa: F811
    tenant = TenantFactory(name="Clínica Sol — Hialeah")
    user = django_user_model(username="dra.nuñez", email="dra.nunez@clinica-sol.example")
    # daphne runs production settings (PBKDF2); the test settings' fast MD5 hasher is unknown there
    user.password = PBKDF2PasswordHasher().encode("girasol-2026-ñ", PBKDF2PasswordHasher().salt())
    staff_member_create(tenant=tenant, user=user, role="admin")

    page = browser.new_page(viewport=PHONE)
    try:
        page.goto(daphne + "/admin/crm/crmconnection/")
        page.fill("#id_username", "dra.nuñez")
        page.fill("#id_password", "girasol-2026-ñ")
        page.click("input[type=submit]")
        page.get_by_role("link", name="Connect HubSpot").click()
        page.wait_for_selector("#grant")
        assert "crm.objects.contacts.write" in page.content()
        page.click("#grant")
        page.wait_for_selector("text=HubSpot is connected")
        connection = CrmConnection.objects.get(tenant=tenant, provider="hubspot")
        assert page.url.endswith(f"/admin/crm/crmconnection/{connection.pk}/change/")
        assert connection.status == "active" and connection.access_token in hubspot_stub.valid_tokens
        assert connection.refresh_token == "rt-1"
        assert connection.access_token not in page.content()
    finally:
        page.close()
