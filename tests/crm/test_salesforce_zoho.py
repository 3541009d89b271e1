"""Salesforce (simple-salesforce over TLS) and Zoho CRM (httpx) against local stubs of their documented APIs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from crm.models import CrmRecordMap
from crm.services import crm_delivery_attempt
from tests.crm.records import connect, deliver, enriched, patient

pytestmark = pytest.mark.django_db


def no_transcript_left(stub) -> None:
    for request in stub.requests:
        text = request["raw"].decode()
        assert "fiebre" not in text and "necesito" not in text


# --- Salesforce ------------------------------------------------------------------------------------------------


def sf_connect(tenant, salesforce):
    return connect(tenant, "salesforce", instance_url=salesforce.base, token_expires_at=None)


def test_salesforce_first_contact_then_a_second_task_on_the_same_contact(tenant, salesforce):
    sf_connect(tenant, salesforce)
    ines = patient(tenant, name="Inés O’Connor")  # a curly apostrophe in the name, quoted safely in SOQL
    assert deliver(enriched(ines, channel="voice", minutes_ago=90, escalated=True))[1] == "succeeded"
    assert deliver(enriched(ines, channel="email", intent="billing"))[1] == "succeeded"

    ((contact_id, contact),) = salesforce.objects["Contact"].items()
    assert contact == {
        "LastName": "O’Connor",
        "FirstName": "Inés",
        "Phone": "+13055550142",
        "Email": "ines.pena@correo.example",
    }
    call, email = salesforce.objects["Task"].values()
    assert call["WhoId"] == email["WhoId"] == contact_id
    assert call["TaskSubtype"] == "Call" and call["CallType"] == "Inbound" and call["CallDurationInSeconds"] == 240
    assert call["Priority"] == "High" and call["Status"] == "Completed"
    assert email["TaskSubtype"] == "Task" and "Intent: billing" in email["Description"]
    queries = [r["query"]["q"] for r in salesforce.calls("GET", r"/query")]
    assert queries[0] == "SELECT Id FROM Contact WHERE Phone = '+13055550142' ORDER BY CreatedDate LIMIT 1"
    assert all(r["headers"]["authorization"] == "Bearer at-1" for r in salesforce.requests)
    no_transcript_left(salesforce)


def test_salesforce_request_limit_then_success_writes_once(tenant, salesforce):
    sf_connect(tenant, salesforce)
    salesforce.fail_next(
        "POST",
        r"/sobjects/Task",
        403,
        [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
    )
    t0 = timezone.now()
    delivery, outcome = deliver(enriched(patient(tenant)), now=t0)
    assert outcome == "retrying"
    delivery.refresh_from_db()
    assert delivery.last_status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in delivery.last_error
    assert crm_delivery_attempt(delivery_id=delivery.pk, now=t0 + timedelta(minutes=1)) == "succeeded"
    assert len(salesforce.objects["Contact"]) == 1 and len(salesforce.objects["Task"]) == 1


def test_salesforce_expired_session_is_refreshed(tenant, salesforce):
    conn = sf_connect(tenant, salesforce)
    salesforce.valid_tokens = {"at-expired-elsewhere"}
    assert deliver(enriched(patient(tenant)))[1] == "succeeded"
    (refresh,) = salesforce.calls("POST", r"/services/oauth2/token$")
    assert refresh["form"]["grant_type"] == "refresh_token" and refresh["form"]["client_id"] == "3MVG9sf-consumer-key"
    conn.refresh_from_db()
    assert conn.access_token in salesforce.valid_tokens and conn.instance_url == salesforce.base
    assert len(salesforce.objects["Task"]) == 1


def test_salesforce_revoked_refresh_token_disables_and_alerts(
    tenant, salesforce, clinic_admin, django_capture_on_commit_callbacks
):
    conn = sf_connect(tenant, salesforce)
    salesforce.valid_tokens, salesforce.revoked = set(), {"rt-1"}
    with django_capture_on_commit_callbacks(execute=True):
        _, outcome = deliver(enriched(patient(tenant)))
    assert outcome == "disabled"
    conn.refresh_from_db()
    assert conn.status == "disabled" and "invalid_grant" in conn.last_error
    (alert,) = mail.outbox
    assert alert.to == ["marisol.ortiz@clinica-sol.example"] and "Salesforce" in alert.subject


def test_salesforce_rescored_interaction_updates_its_task(tenant, salesforce):
    sf_connect(tenant, salesforce)
    call = enriched(patient(tenant), channel="voice")
    deliver(call)
    call.lead_score, call.enriched_at = 97, timezone.now()
    call.save(update_fields=["lead_score", "enriched_at"])
    assert deliver(call)[1] == "succeeded"  # PATCH without TaskSubtype (the stub refuses it, like Salesforce)
    (task,) = salesforce.objects["Task"].values()
    assert "Lead score: 97 / 100" in task["Description"]


# --- Zoho CRM --------------------------------------------------------------------------------------------------


def zoho_connect(tenant, zoho):
    return connect(tenant, "zoho", instance_url=zoho.base, accounts_url=zoho.base)


def test_zoho_first_contact_then_a_note_on_the_same_contact(tenant, zoho):
    zoho_connect(tenant, zoho)
    ines = patient(tenant)
    assert deliver(enriched(ines, channel="voicemail", minutes_ago=90, direction="inbound"))[1] == "succeeded"
    assert deliver(enriched(ines, channel="chat", intent="new_patient", lead_score=71))[1] == "succeeded"

    ((contact_id, contact),) = zoho.objects["Contacts"].items()
    assert contact == {
        "Last_Name": "Peña-Álvarez",
        "First_Name": "Inés",
        "Phone": "+13055550142",
        "Email": "ines.pena@correo.example",
    }
    (call,) = zoho.objects["Calls"].values()
    assert call["Who_Id"] == {"id": contact_id} and call["Call_Type"] == "Inbound" and call["Call_Duration"] == "04:00"
    (note,) = zoho.objects["Notes"].values()
    assert note["Parent_Id"] == {"module": {"api_name": "Contacts"}, "id": contact_id}
    assert "Lead score: 71 / 100" in note["Note_Content"]
    assert all(r["headers"]["authorization"] == "Zoho-oauthtoken at-1" for r in zoho.requests)
    searches = [r["query"] for r in zoho.calls("GET", r"/Contacts/search$")]
    assert [sorted(q) for q in searches] == [["fields", "per_page", "phone"], ["email", "fields", "per_page"]]
    assert len(zoho.calls("POST", r"/Contacts$")) == 1  # the first delivery searched; the second used the map
    no_transcript_left(zoho)


def test_zoho_429_then_success_writes_once(tenant, zoho):
    zoho_connect(tenant, zoho)
    zoho.fail_next(
        "POST",
        r"/crm/v8/Contacts$",
        429,
        {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "API limit exceeded", "status": "error"},
        {"Retry-After": "90", "X-RATELIMIT-REMAINING": "0"},
    )
    t0 = timezone.now()
    delivery, outcome = deliver(enriched(patient(tenant)), now=t0)
    assert outcome == "retrying"
    delivery.refresh_from_db()
    assert delivery.next_attempt_at >= t0 + timedelta(seconds=90)
    assert crm_delivery_attempt(delivery_id=delivery.pk, now=t0 + timedelta(seconds=95)) == "succeeded"
    assert len(zoho.objects["Contacts"]) == 1 and len(zoho.objects["Notes"]) == 1


def test_zoho_expired_token_is_refreshed_at_the_accounts_server(tenant, zoho):
    conn = zoho_connect(tenant, zoho)
    zoho.valid_tokens = {"at-expired-elsewhere"}
    assert deliver(enriched(patient(tenant)))[1] == "succeeded"
    (refresh,) = zoho.calls("POST", r"/oauth/v2/token$")
    assert refresh["form"]["refresh_token"] == "rt-1" and refresh["form"]["client_id"] == "1000.ZOHOCLIENTID"
    conn.refresh_from_db()
    assert conn.access_token in zoho.valid_tokens and conn.token_expires_at > timezone.now() + timedelta(minutes=55)


def test_zoho_revoked_refresh_token_disables_and_alerts(tenant, zoho, clinic_admin, django_capture_on_commit_callbacks):
    conn = zoho_connect(tenant, zoho)
    zoho.valid_tokens, zoho.revoked = set(), {"rt-1"}
    with django_capture_on_commit_callbacks(execute=True):
        _, outcome = deliver(enriched(patient(tenant)))
    assert outcome == "disabled"
    conn.refresh_from_db()
    assert conn.status == "disabled" and "invalid_code" in conn.last_error
    assert len(mail.outbox) == 1 and "Zoho CRM" in mail.outbox[0].subject
    assert zoho.objects["Contacts"] == {}


def test_zoho_record_level_error_fails_the_delivery_visibly(tenant, zoho):
    zoho_connect(tenant, zoho)
    zoho.fail_next(
        "POST",
        r"/crm/v8/Notes$",
        202,
        {
            "data": [
                {
                    "code": "INVALID_DATA",
                    "details": {"api_name": "Note_Content"},
                    "message": "invalid data",
                    "status": "error",
                }
            ]
        },
    )
    delivery, outcome = deliver(enriched(patient(tenant, phone="", email="ines.pena@correo.example")))
    assert outcome == "failed"
    delivery.refresh_from_db()
    assert "INVALID_DATA" in delivery.last_error and "Note_Content" in delivery.last_error
    assert CrmRecordMap.objects.filter(kind="interaction").count() == 0
