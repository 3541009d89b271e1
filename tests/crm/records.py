"""Shared steps of the CRM tests: a connected tenant, a real-sounding patient, an enriched interaction, a delivery."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from crm.models import CrmConnection, CrmDelivery
from crm.services import crm_deliveries_enqueue, crm_delivery_attempt
from tests.factories import ConversationFactory, CustomerFactory, IdentifierFactory, InteractionFactory


def connect(tenant, provider: str, **extra) -> CrmConnection:
    values = {"access_token": "at-1", "refresh_token": "rt-1", "token_expires_at": timezone.now() + timedelta(hours=1)}
    return CrmConnection.objects.create(tenant=tenant, provider=provider, **{**values, **extra})


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


def deliver(interaction, now=None) -> tuple[CrmDelivery, str]:
    """Queue ``interaction`` for the tenant's one connection and attempt it at ``now``: ``(row, outcome)``."""
    (pk,) = crm_deliveries_enqueue(interaction_id=interaction.pk, at=now)
    return CrmDelivery.objects.get(pk=pk), crm_delivery_attempt(delivery_id=pk, now=now)
