"""A clinic that forbids LLMs (Tenant.llm_forbidden): with an OpenAI-compatible server configured, the agent, the
triage second opinion and enrichment all run locally and the server receives nothing; other clinics still use it."""

from __future__ import annotations

import pytest

from conversations import engine, services
from conversations.triage.models import TriageDecision
from enrichment.services import interaction_enrich
from identity.services import customer_resolve
from tests.stubs.openai_api import llm_serving, text

pytestmark = pytest.mark.django_db


def always_answers(request: dict) -> dict:
    return text("¡Claro! ¿Qué día le viene bien?")


def _patient_says(tenant, words: str):
    customer = customer_resolve(tenant=tenant, phone="+14155550140", verified_kinds=("phone",)).customer
    row, _ = services.session_open(tenant=tenant, customer=customer, channel="sms")
    services.interaction_append_turn(interaction=row, role="customer", text=words)
    return row


def test_forbidden_clinic_never_reaches_the_llm(tenant, settings):
    tenant.llm_forbidden = True
    tenant.save(update_fields=["llm_forbidden"])
    with llm_serving(settings, always_answers) as responder:
        settings.TRIAGE_LLM = True
        row = _patient_says(tenant, "hola, quisiera una cita el jueves por la tarde, me duele la muela 🦷")
        reply = engine.respond(interaction=row, text=row.transcript[-1]["text"])
        services.interaction_close(interaction=row)
        enriched = interaction_enrich(interaction_id=row.pk)
        assert responder.server.requests == []  # not one request: not the agent, not triage, not enrichment
    assert reply.text and "Claro" not in reply.text  # the offline agent answered
    assert not TriageDecision.objects.filter(interaction=row, engine="rules+llm").exists()  # rules only
    assert enriched.enrichment_backend == "local"


def test_other_clinics_still_use_the_configured_llm(tenant, settings):
    with llm_serving(settings, always_answers) as responder:
        row = _patient_says(tenant, "hola, quisiera una cita el jueves por la tarde")
        reply = engine.respond(interaction=row, text=row.transcript[-1]["text"])
        assert responder.server.requests
    assert "Claro" in reply.text
