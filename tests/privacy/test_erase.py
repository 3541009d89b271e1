"""Erase and export: nothing about the patient survives an erase; numbers stay; refused under an open incident."""

import io
import json
import zipfile

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from conversations import services
from conversations.api.services import api_key_create
from conversations.inbox.services import inbox_note_add
from conversations.models import Interaction
from conversations.webhooks.models import WebhookEndpoint, WebhookMessage
from escalation.models import Incident
from identity.models import AuditEvent, Customer
from identity.privacy import ErasureRefused, customer_erase

SECRETS = ("Zelda Quux", "Zelda", "4155550123", "zelda.quux@example.org")


def tables_containing(needles):
    """(table, needle) for every row of every table whose text contains a needle."""
    found = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for (table,) in cursor.fetchall():
            for needle in needles:
                cursor.execute(f'SELECT 1 FROM "{table}" t WHERE t::text ILIKE %s LIMIT 1', [f"%{needle}%"])
                if cursor.fetchone():
                    found.append((table, needle))
    return found


@pytest.fixture
def rich_patient(patient_row, staff_client):
    conversation = patient_row.conversation
    inbox_note_add(conversation=conversation, user=staff_client.user, body="Zelda prefers mornings")
    services.state_set(conversation=conversation, key="name", value="Zelda Quux")
    WebhookEndpoint.objects.create(
        tenant=patient_row.tenant, url="https://hooks.example.com/x", events=["customer.erased"]
    )
    staff_client.get("/admin/identity/customer/", {"q": "Zelda"})  # audit keeps only the search's length
    return patient_row


@pytest.mark.django_db
def test_api_erase_leaves_nothing_keeps_numbers_and_fires_webhook(
    rich_patient, client, tenant, django_capture_on_commit_callbacks
):
    Interaction.objects.filter(pk=rich_patient.pk).update(sentiment=0.5, lead_score=70)
    assert tables_containing(SECRETS)  # the scan does find the patient before
    raw = api_key_create(tenant=tenant, name="dpo", scopes=["privacy:write"])[1]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/v1/customers/{rich_patient.customer_id}/erase/", HTTP_AUTHORIZATION=f"Bearer {raw}"
        )
    assert response.status_code == 200, response.content
    assert tables_containing(SECRETS) == []
    row = Interaction.objects.get(pk=rich_patient.pk)
    assert (row.sentiment, row.lead_score, row.transcript) == (0.5, 70, [])
    assert Customer.objects.get(pk=rich_patient.customer_id).erased_at is not None
    message = WebhookMessage.objects.get(event_type="customer.erased")
    assert message.payload["data"] == {"customer": {"id": str(rich_patient.customer_id)}}
    assert AuditEvent.objects.filter(action="privacy.erase", outcome="ok").count() == 1


@pytest.mark.django_db
def test_erase_refused_under_open_incident_and_other_tenant_is_404(rich_patient, tenant, other_tenant, client):
    Incident.objects.create(
        tenant=tenant,
        customer_id=rich_patient.customer_id,
        reason="emergency phrase",
        urgency=5,
        raised_at=timezone.now(),
    )
    with pytest.raises(ErasureRefused, match="incident"):
        customer_erase(customer=rich_patient.customer)
    assert AuditEvent.objects.filter(action="privacy.erase", outcome="refused").count() == 1
    raw = api_key_create(tenant=tenant, name="dpo")[1]
    url = f"/api/v1/customers/{rich_patient.customer_id}/erase/"
    assert client.post(url, HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 409
    other = api_key_create(tenant=other_tenant, name="dpo")[1]
    assert client.post(url, HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 404
    assert tables_containing(["Zelda Quux"])  # nothing erased


@pytest.mark.django_db
def test_export_zip_and_command(rich_patient, api, tenant):
    response = api(tenant, scopes=["privacy:read"])(f"/api/v1/customers/{rich_patient.customer_id}/export/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    data = json.loads(zipfile.ZipFile(io.BytesIO(response.content)).read("patient.json"))
    assert data["customer"]["display_name"] == "Zelda Quux" and data["customer"]["memory_opt_out"] is False
    assert data["conversations"]["interactions"][0]["transcript"][0]["text"] == "Zelda here, my knee hurts"
    assert AuditEvent.objects.filter(action="privacy.export", customer_id=rich_patient.customer_id).count() == 1

    call_command("erase_customer", str(rich_patient.customer_id), "--yes")
    assert tables_containing(SECRETS) == []


@pytest.mark.django_db
def test_admin_erase_action_asks_then_erases_for_clinic_admins_only(rich_patient, staff_client):
    url = "/admin/identity/customer/"
    form = {"action": "erase_customers", "_selected_action": [str(rich_patient.customer_id)]}
    staff_client.post(url, form)  # plain staff: refused
    assert Customer.objects.get(pk=rich_patient.customer_id).erased_at is None

    from identity.models import TenantMembership

    TenantMembership.objects.filter(user=staff_client.user).update(role="admin")
    page = staff_client.post(url, form)
    assert page.status_code == 200 and b"cannot be undone" in page.content
    assert Customer.objects.get(pk=rich_patient.customer_id).erased_at is None
    staff_client.post(url, {**form, "confirm": "yes"})
    assert Customer.objects.get(pk=rich_patient.customer_id).erased_at is not None
    assert tables_containing(SECRETS) == []
