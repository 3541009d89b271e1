"""CRM fixtures: the vendors' local stubs, a connected tenant and an enriched interaction of a real-sounding patient."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from crm.models import CrmConnection
from identity.models import TenantMembership
from tests.crm.stub import HubSpotStub, SalesforceStub, ZohoStub, self_signed_tls
from tests.factories import ConversationFactory, CustomerFactory, IdentifierFactory, InteractionFactory


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


def connect(tenant, provider: str, **extra) -> CrmConnection:
    values = {"access_token": "at-1", "refresh_token": "rt-1", "token_expires_at": timezone.now() + timedelta(hours=1)}
    return CrmConnection.objects.create(tenant=tenant, provider=provider, **{**values, **extra})


@pytest.fixture
def clinic_admin(tenant):
    user = get_user_model().objects.create_user("marisol", email="marisol.ortiz@clinica-sol.example", password="x" * 12)
    TenantMembership.objects.create(user=user, tenant=tenant, role="admin")
    return user


def patient(tenant, *, name="Inés Peña-Álvarez", phone="+13055550142", email="ines.pena@correo.example"):
    customer = CustomerFactory(tenant=tenant, display_name=name)
    if phone:
        IdentifierFactory(customer=customer, kind="phone", value=phone, verified=True)
    if email:
        IdentifierFactory(customer=customer, kind="email", value=email)
    return customer


def enriched(customer, *, channel="sms", minutes_ago=30, **scores):
    started = timezone.now() - timedelta(minutes=minutes_ago)
    values = {
        "sentiment": Decimal("-0.4200"),
        "intent": "reschedule",
        "lead_score": 35,
        "satisfaction": 2,
        "escalated": False,
        "enriched_at": started + timedelta(minutes=5),
    }
    values.update(scores)
    return InteractionFactory(
        conversation=ConversationFactory(customer=customer, status="closed", closed_at=started + timedelta(minutes=4)),
        channel=channel,
        started_at=started,
        ended_at=started + timedelta(minutes=4),
        last_activity_at=started + timedelta(minutes=4),
        transcript=[
            {"role": "customer", "text": "hola, necesito cambiar mi cita del martes 🙏 tengo fiebre", "at": ""},
            {"role": "agent", "text": "Claro, ¿qué día le viene mejor?", "at": ""},
        ],
        enrichment_backend="local",
        enrichment_version="1",
        **values,
    )
