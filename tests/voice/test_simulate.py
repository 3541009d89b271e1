"""``manage.py simulate call`` plays a signed call against a running server (daphne)."""

import io

import pytest
from django.core.management import call_command

from conversations.models import AgentSettings, Interaction
from tests import processes


@pytest.mark.django_db(transaction=True)
def test_simulate_call_against_a_running_server(tenant, tmp_path):
    day = [["00:00", "24:00"]]  # open around the clock: the greeting never offers after-hours voicemail
    AgentSettings.objects.create(
        tenant=tenant, bookable_hours=dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), day)
    )
    server, base = processes.start_daphne(log_path=tmp_path / "daphne.log")
    out = io.StringIO()
    try:
        call_command(
            "simulate",
            "--server",
            base,
            "--tenant",
            tenant.slug,
            "call",
            "--from",
            "+15551230077",
            "--say",
            "Hi, my name is Ana",
            "--say",
            "What's my name?",
            "--wait",
            "0",
            stdout=out,
        )
    finally:
        processes.stop(server)
    printed = out.getvalue()
    assert "POST /twilio/voice/ → 200" in printed and "POST /twilio/voice/status/ → 204" in printed
    assert "caller: What's my name?" in printed and "Ana" in printed.split("caller: What's my name?")[1]
    row = Interaction.objects.get()
    assert row.channel == "voice" and row.ended_at is not None
    assert [t["role"] for t in row.transcript] == ["agent", "customer", "agent", "customer", "agent"]
