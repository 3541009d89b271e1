"""SLA: a per-tenant target (default 5 min to acknowledge) frozen on each incident, the breach flag, and per-week
median / p90 time to acknowledge and breach rate (hand-checked) in the API (JSON, CSV), the attempts CSV and admin."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from escalation import services
from escalation.models import EscalationSettings, Incident
from escalation.selectors import percentile, sla_weekly
from tests.escalation.steps import staff_with_perms
from tests.factories import InteractionFactory, PhoneNumberFactory, TenantFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/escalation/sla/weekly/"
MONDAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday


def incident(tenant, raised_at, tta=None, target=300):
    """An incident raised at ``raised_at``, acknowledged ``tta`` seconds later (None: never)."""
    interaction = InteractionFactory(tenant=tenant, conversation__tenant=tenant, conversation__customer__tenant=tenant)
    acked = raised_at + timedelta(seconds=tta) if tta is not None else None
    return Incident.objects.create(
        tenant=tenant,
        interaction=interaction,
        urgency=5,
        reason="x",
        raised_at=raised_at,
        sla_due_at=raised_at + timedelta(seconds=target),
        status="acknowledged" if acked else "unacknowledged",
        acknowledged_at=acked,
        sla_breached=bool(acked and tta > target),
    )


@pytest.fixture
def history(esc_tenant, oncall):
    # week of 2 Nov: acked after 30, 60, 90 and 400 s (a breach), one never acknowledged (a breach)
    for i, tta in enumerate([90, 30, 400, 60, None]):
        incident(esc_tenant, MONDAY + timedelta(days=i, hours=1), tta)
    # week of 9 Nov: one acked after 10 s
    incident(esc_tenant, MONDAY + timedelta(days=7, hours=3), 10)
    # another tenant's incident in the same week must not count
    other = TenantFactory()
    PhoneNumberFactory(tenant=other, number="+15550100055")
    incident(other, MONDAY, 999)
    return esc_tenant


def test_percentile_matches_postgres_percentile_cont():
    assert percentile([30, 60, 90, 400], 0.5) == 75.0
    assert percentile([30, 60, 90, 400], 0.9) == pytest.approx(307.0)  # 90 + 0.7 × (400 − 90)
    assert percentile([10], 0.9) == 10 and percentile([], 0.5) is None


def test_weekly_figures_hand_checked(history):
    weeks = sla_weekly(tenant_id=history.pk, start=date(2026, 11, 1), end=date(2026, 11, 15))
    assert weeks == [
        {
            "week_start": date(2026, 11, 2),
            "incidents": 5,
            "acknowledged": 4,
            "median_time_to_ack_seconds": 75.0,
            "p90_time_to_ack_seconds": 307.0,
            "breached": 2,
            "breach_rate": 0.4,
            "sla_target_seconds": 300,
        },
        {
            "week_start": date(2026, 11, 9),
            "incidents": 1,
            "acknowledged": 1,
            "median_time_to_ack_seconds": 10.0,
            "p90_time_to_ack_seconds": 10.0,
            "breached": 0,
            "breach_rate": 0.0,
            "sla_target_seconds": 300,
        },
    ]


def test_weekly_api_json_and_csv_for_the_callers_tenant(client, django_user_model, history):
    client.force_login(staff_with_perms(django_user_model, history))
    data = client.get(URL, {"start": "2026-11-01", "end": "2026-11-15", "format": "json"}).json()
    assert [(w["week_start"], w["incidents"], w["breach_rate"]) for w in data["weeks"]] == [
        ("2026-11-02", 5, 0.4),
        ("2026-11-09", 1, 0.0),
    ]
    response = client.get(URL, {"start": "2026-11-01", "end": "2026-11-15"}, HTTP_ACCEPT="text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows[0]["median_time_to_ack_seconds"] == "75.0" and rows[0]["p90_time_to_ack_seconds"] == "307.0"
    assert client.get("/admin/escalation/incident/sla-export/").status_code == 200


def test_raise_freezes_the_tenants_target_and_a_late_ack_is_a_breach(oncall, patient_interaction):
    EscalationSettings.objects.filter(tenant=patient_interaction.tenant).update(sla_ack_seconds=120)
    raised = timezone.now()
    inc, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="x", at=raised)
    assert inc.sla_due_at == raised + timedelta(seconds=120) and not inc.sla_breached
    services.incident_acknowledge(
        incident=inc, responder=oncall["primary"], via="sms", at=raised + timedelta(seconds=121)
    )
    inc.refresh_from_db()
    assert inc.sla_breached


def test_an_ack_in_time_is_no_breach_and_the_default_target_is_5_minutes(oncall, patient_interaction):
    raised = timezone.now()
    inc, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="x", at=raised)
    assert inc.sla_due_at == raised + timedelta(minutes=5)
    services.incident_acknowledge(
        incident=inc, responder=oncall["primary"], via="sms", at=raised + timedelta(seconds=38)
    )
    inc.refresh_from_db()
    assert not inc.sla_breached


def test_the_auditor_flags_an_incident_still_paging_past_its_target(oncall, patient_interaction):
    raised = timezone.now() - timedelta(minutes=6)
    inc, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="x", at=raised)
    Incident.objects.filter(pk=inc.pk).update(next_step_at=None)  # keep the auditor off the ladder
    services.escalation_audit()
    inc.refresh_from_db()
    assert inc.status == "triggered" and inc.sla_breached
