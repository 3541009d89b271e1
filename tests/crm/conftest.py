"""CRM fixtures: the vendors' local stubs (per test, settings pointed at them), a clinic admin, daphne for the browser."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from identity.models import TenantMembership
from tests import processes
from tests.crm.stub import HubSpotStub, SalesforceStub, ZohoStub, self_signed_tls


@pytest.fixture
def hubspot(settings):
    stub = HubSpotStub()
    settings.CRM_HUBSPOT_API_BASE = stub.base
    settings.CRM_HUBSPOT_CLIENT_ID = "hs-client-id"
    settings.CRM_HUBSPOT_CLIENT_SECRET = "hs-client-secret"
    settings.CRM_RETRY_SCHEDULE = [30, 300, 1800]
    yield stub
    stub.stop()


@pytest.fixture
def salesforce(settings, tmp_path, monkeypatch):
    tls, ca_file = self_signed_tls(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)  # requests (simple-salesforce) trusts the stub's cert
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # and so does httpx (the token endpoint)
    stub = SalesforceStub(tls)
    settings.CRM_SALESFORCE_LOGIN_URL = stub.base
    settings.CRM_SALESFORCE_API_VERSION = SalesforceStub.VERSION
    settings.CRM_SALESFORCE_CLIENT_ID = "3MVG9sf-consumer-key"
    settings.CRM_SALESFORCE_CLIENT_SECRET = "sf-consumer-secret"
    settings.CRM_RETRY_SCHEDULE = [30, 300, 1800]
    yield stub
    stub.stop()


@pytest.fixture
def zoho(settings):
    stub = ZohoStub()
    settings.CRM_ZOHO_ACCOUNTS_URL = stub.base
    settings.CRM_ZOHO_CLIENT_ID = "1000.ZOHOCLIENTID"
    settings.CRM_ZOHO_CLIENT_SECRET = "zoho-client-secret"
    settings.CRM_RETRY_SCHEDULE = [30, 300, 1800]
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def hubspot_for_daphne():
    """A HubSpot stub for a daphne process (module-scoped like it); its consent screen sends the browser back."""
    stub = HubSpotStub()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def crm_daphne(django_db_setup, django_db_blocker, tmp_path_factory, hubspot_for_daphne):
    """daphne (production settings) whose HubSpot OAuth app points at :func:`hubspot_for_daphne`."""
    with django_db_blocker.unblock():
        proc, base = processes.start_daphne(
            log_path=tmp_path_factory.mktemp("daphne") / "daphne.log",
            CRM_HUBSPOT_CLIENT_ID="hs-client-id",
            CRM_HUBSPOT_CLIENT_SECRET="hs-client-secret",
            CRM_HUBSPOT_API_BASE=hubspot_for_daphne.base,
            CRM_HUBSPOT_AUTHORIZE_URL=hubspot_for_daphne.base + "/oauth/authorize",
        )
    hubspot_for_daphne.redirect_base = base
    yield base
    processes.stop(proc)


@pytest.fixture
def clinic_admin(tenant):
    user = get_user_model().objects.create_user("marisol", email="marisol.ortiz@clinica-sol.example", password="x" * 12)
    TenantMembership.objects.create(user=user, tenant=tenant, role="admin")
    return user
