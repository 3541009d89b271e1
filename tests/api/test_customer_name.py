"""The export API names the patient (issue 15, clean data: "admin and the API show the patient's name"):
``customer_name`` beside ``customer`` in interactions, conversations and appointments — JSON, CSV and NDJSON —
from the key's own clinic only, with one join rather than a query per row, the read audited, and the intake's
date of birth and reason for visit (encrypted) never in any export."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from identity.models import AuditEvent
from tests.factories import AppointmentFactory, ConversationFactory, CustomerFactory, InteractionFactory

pytestmark = pytest.mark.django_db
ENDPOINTS = ("interactions", "conversations", "appointments")


@pytest.fixture
def marisol(tenant, other_tenant):
    patient = CustomerFactory(tenant=tenant, display_name="Marisol Ortega-Núñez")
    patient.date_of_birth, patient.visit_reason = date(1984, 3, 7), "follow-up on my thyroid meds"
    patient.save(update_fields=["date_of_birth", "visit_reason"])
    conversation = ConversationFactory(customer=patient)
    InteractionFactory(conversation=conversation, channel="sms")
    InteractionFactory(conversation=conversation, channel="chat")
    AppointmentFactory(customer=patient, conversation=conversation)
    stranger = CustomerFactory(tenant=other_tenant, display_name="Someone Elsewhere")
    InteractionFactory(conversation=ConversationFactory(customer=stranger))
    AppointmentFactory(customer=stranger)
    return patient


def _body(response) -> str:
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


def test_every_export_names_the_patient_in_json_csv_and_ndjson(api, tenant, marisol):
    get = api(tenant)
    for endpoint in ENDPOINTS:
        rows = get(f"/api/v1/{endpoint}/").json()["results"]
        assert rows and {(r["customer"], r["customer_name"]) for r in rows} == {
            (str(marisol.pk), "Marisol Ortega-Núñez")
        }, endpoint
        one = get(f"/api/v1/{endpoint}/{rows[0]['id']}/").json()
        assert one["customer_name"] == "Marisol Ortega-Núñez"
        table = list(csv.DictReader(io.StringIO(_body(get(f"/api/v1/{endpoint}/", {"format": "csv"})))))
        assert {(r["customer_id"], r["customer_name"]) for r in table} == {(str(marisol.pk), "Marisol Ortega-Núñez")}
        lines = [json.loads(line) for line in _body(get(f"/api/v1/{endpoint}/", {"format": "ndjson"})).splitlines()]
        assert {line["customer_name"] for line in lines} == {"Marisol Ortega-Núñez"}, endpoint
    exports = AuditEvent.objects.filter(tenant=tenant, action="api.export").count()
    assert exports == 2 * len(ENDPOINTS)  # each CSV / NDJSON export of names is in the access audit


def test_no_date_of_birth_or_reason_and_no_other_clinic_in_any_export(api, tenant, marisol):
    get = api(tenant)
    for endpoint in ENDPOINTS:
        for params in ({}, {"format": "csv"}, {"format": "ndjson"}):
            body = _body(get(f"/api/v1/{endpoint}/", params))
            assert "Marisol" in body
            for leaked in ("1984-03-07", "1984", "thyroid", "date_of_birth", "visit_reason", "Someone Elsewhere"):
                assert leaked not in body, (endpoint, params, leaked)


def test_names_cost_no_query_per_row(api, tenant, marisol):
    get = api(tenant)
    get("/api/v1/interactions/")  # the key's first use of the run writes its last-used time
    with CaptureQueriesContext(connection) as few:
        assert len(get("/api/v1/interactions/").json()["results"]) == 2
    for _ in range(8):
        InteractionFactory(conversation=ConversationFactory(customer=CustomerFactory(tenant=tenant)), channel="email")
    with CaptureQueriesContext(connection) as many:
        assert len(get("/api/v1/interactions/").json()["results"]) == 10
    assert len(many.captured_queries) == len(few.captured_queries)


def test_customer_360_rows_name_the_patient_without_a_query_per_row(api, tenant, marisol):
    get = api(tenant)
    path = f"/api/v1/customers/{marisol.pk}/timeline/"
    get(path)
    with CaptureQueriesContext(connection) as few:
        rows = get(path).json()["interactions"]
    assert [r["customer_name"] for r in rows] == ["Marisol Ortega-Núñez"] * 2
    for _ in range(6):
        InteractionFactory(
            conversation=marisol.conversations.first(), channel="email", ended_at=timezone.now() + timedelta(minutes=5)
        )
    with CaptureQueriesContext(connection) as many:
        assert len(get(path).json()["interactions"]) == 8
    assert len(many.captured_queries) == len(few.captured_queries)
