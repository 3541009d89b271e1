"""``seed_demo``'s escalation data and ``manage.py simulate emergency`` against a running server (daphne) and
an escalation worker: the SMS raises an incident, the ladder pages, the link acknowledges."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from escalation import demo
from escalation.models import EscalationPolicy, EscalationStep, Incident, Responder, ScheduleMember
from tests import processes


@pytest.mark.django_db
def test_demo_seed_is_idempotent(esc_tenant):
    first = demo.seed(esc_tenant)
    second = demo.seed(esc_tenant)
    assert first == second
    assert Responder.objects.filter(tenant=esc_tenant).count() == 2
    assert ScheduleMember.objects.filter(schedule__tenant=esc_tenant).count() == 2
    assert EscalationStep.objects.filter(policy__tenant=esc_tenant).count() == 2
    assert EscalationPolicy.objects.get(tenant=esc_tenant).repeat_count == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_simulate_emergency_pages_and_acks_by_link(esc_tenant, stub_worker, tmp_path):
    demo.seed(esc_tenant)
    stub_worker()
    daphne, base = processes.start_daphne(log_path=tmp_path / "daphne.log")
    try:
        out = io.StringIO()
        call_command(
            "simulate",
            "--server",
            base,
            "--tenant",
            esc_tenant.slug,
            "emergency",
            "--wait",
            "20",
            "--ack-after",
            "1",
            stdout=out,
        )
    finally:
        processes.stop(daphne)
    text = out.getvalue()
    incident = Incident.objects.get(tenant=esc_tenant)
    assert incident.status == "acknowledged" and incident.ack_via == "link"
    assert "step 1 round 1 sms" in text and "step 1 round 1 voice" in text and "ack link: https://" in text
    assert "acknowledged by Dr. " in text and "step 2" not in text
