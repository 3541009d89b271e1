"""CRM fixtures: the vendors' local stubs, a connected tenant and an enriched interaction of a real-sounding patient."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from crm.models import CrmConnection
from identity.models import TenantMembership
from tests.crm.stub import HubSpotStub
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
