"""SLA reporting: the attempts CSV in admin and under /api/v1/, tenant-scoped; the incident admin pages."""

from __future__ import annotations

import csv
import io
from datetime import UTC, timedelta

import pytest

from escalation import services
from escalation.models import NotificationAttempt
from identity.models import TenantMembership
from tests.escalation.conftest import PRIMARY
from tests.escalation.steps import staff, staff_with_perms

pytestmark = pytest.mark.django_db
URL = "/api/v1/escalation/attempts/"


@pytest.fixture
def acked_incident(oncall, patient_interaction, twilio_stub):
    incident, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="emergency phrase")
    outcome = services.incident_run_step(incident_id=incident.pk, fence=incident.fence, dispatch=False)
    for item in outcome.outbound:
        services.attempt_deliver(outbound=item)
    services.incident_acknowledge(incident=incident, responder=oncall["primary"], via="sms")
    return incident


def report_day(incident):
    """The UTC day the report files the incident's attempts under (they are all created at its first step)."""
    [day] = {
        at.astimezone(UTC).date()
        for at in NotificationAttempt.objects.filter(incident=incident).values_list("created_at", flat=True)
    }
    return day


def read_csv(response):
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_api_csv_has_only_the_callers_tenant(client, django_user_model, acked_incident, foreign_incident):
    client.force_login(staff(django_user_model, acked_incident.tenant))
    response = client.get(URL)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = read_csv(response)
    assert {r["incident_id"] for r in rows} == {str(acked_incident.pk)}
    assert {(r["channel"], r["to"], r["status"]) for r in rows} == {
        ("sms", PRIMARY, "sent"),
        ("voice", PRIMARY, "sent"),
    }
    for r in rows:
        assert r["created_at"] and r["sent_at"] and r["incident_acknowledged_at"] and r["ack_via"] == "sms"
        assert r["acknowledged_by"] == "Dr. Avery Chen" and float(r["time_to_ack_seconds"]) >= 0
        assert int(r["lateness_ms"]) >= 0


def test_api_json_and_date_range(client, django_user_model, acked_incident):
    client.force_login(staff(django_user_model, acked_incident.tenant))
    today = report_day(acked_incident)
    data = client.get(URL, {"format": "json", "start": today, "end": today}).json()
    assert data["count"] == 2 and {r["channel"] for r in data["rows"]} == {"sms", "voice"}
    empty = client.get(URL, {"format": "json", "start": today - timedelta(days=9), "end": today - timedelta(days=1)})
    assert empty.json()["count"] == 0
    assert client.get(URL, {"start": today, "end": today - timedelta(days=1)}).status_code == 400
    assert client.get(URL, {"start": today - timedelta(days=400), "end": today}).status_code == 400


def test_api_refuses_anonymous_and_non_staff(client, django_user_model, acked_incident):
    assert client.get(URL).status_code in (401, 403)
    user = django_user_model.objects.create_user("patient", "p@example.com", "pw")
    TenantMembership.objects.create(user=user, tenant=acked_incident.tenant)
    client.force_login(user)
    assert client.get(URL).status_code == 403


def test_admin_incident_timeline_and_export(client, django_user_model, acked_incident, foreign_incident):
    client.force_login(staff_with_perms(django_user_model, acked_incident.tenant))
    changelist = client.get("/admin/escalation/incident/")
    assert changelist.status_code == 200
    assert str(acked_incident.pk)[:8].encode() in changelist.content
    assert str(foreign_incident.pk)[:8].encode() not in changelist.content
    page = client.get(f"/admin/escalation/incident/{acked_incident.pk}/change/")
    assert page.status_code == 200 and b"acknowledged by Dr. Avery Chen via sms" in page.content
    assert client.get(f"/admin/escalation/incident/{foreign_incident.pk}/change/").status_code == 302  # not theirs
    today = report_day(acked_incident)
    export = client.get("/admin/escalation/incident/sla-export/", {"start": today, "end": today})
    assert {r["incident_id"] for r in read_csv(export)} == {str(acked_incident.pk)}


def test_api_key_with_reports_scope_reads_its_tenant_only(client, acked_incident, foreign_incident):
    from conversations.api.services import api_key_create

    raw = api_key_create(tenant=acked_incident.tenant, name="sla", scopes=["reports:read"])[1]
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    assert {r["incident_id"] for r in read_csv(response)} == {str(acked_incident.pk)}
    narrow = api_key_create(tenant=acked_incident.tenant, name="calls", scopes=["interactions:read"])[1]
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {narrow}").status_code == 403
