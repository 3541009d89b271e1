"""HubSpot end to end against a local stub of its REST API: the official client and our services run for real."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection as db
from django.utils import timezone

from conversations.models import Interaction
from crm.models import CrmConnection, CrmDelivery, CrmRecordMap
from crm.services import LEASE, _claim, _record, crm_deliveries_enqueue, crm_delivery_attempt, crm_redrive
from enrichment.services import interaction_enrich
from identity.models import AuditEvent
from tests.broker import take_queued
from tests.crm.records import connect, deliver, enriched, patient

pytestmark = pytest.mark.django_db


def test_first_contact_creates_a_contact_and_a_call_without_transcript_text(tenant, hubspot):
    connect(tenant, "hubspot")
    call = enriched(patient(tenant), channel="voice", lead_score=82, satisfaction=5, escalated=True)

    delivery, outcome = deliver(call)

    assert outcome == "succeeded"
    (contact_id,) = hubspot.objects["contacts"]
    assert hubspot.objects["contacts"][contact_id] == {
        "phone": "+13055550142",
        "email": "ines.pena@correo.example",
        "firstname": "Inés",
        "lastname": "Peña-Álvarez",
    }
    ((call_id, props),) = hubspot.objects["calls"].items()
    assert hubspot.associations == [("calls", call_id, contact_id, 194)]
    assert props["hs_call_direction"] == "INBOUND" and props["hs_call_duration"] == "240000"
    assert "Lead score: 82 / 100" in props["hs_call_body"] and "Escalated: yes" in props["hs_call_body"]
    assert f"/admin/conversations/interaction/{call.pk}/change/" in props["hs_call_body"]
    for request in hubspot.requests:  # the patient's words never leave
        assert "fiebre" not in request["raw"].decode() and "cita" not in request["raw"].decode()
        assert request["headers"]["authorization"] == "Bearer at-1"
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 1 and delivery.lease_expires_at is None
    assert AuditEvent.objects.filter(action="crm.export", object_id=str(call.pk), tenant_id=tenant.pk).count() == 1


def test_a_second_interaction_adds_a_note_to_the_same_contact(tenant, hubspot):
    connect(tenant, "hubspot")
    ines = patient(tenant)
    deliver(enriched(ines, channel="voice", minutes_ago=90))
    _, outcome = deliver(enriched(ines, channel="chat", intent="pricing", lead_score=64))

    assert outcome == "succeeded"
    assert len(hubspot.objects["contacts"]) == 1
    assert len(hubspot.objects["calls"]) == 1 and len(hubspot.objects["notes"]) == 1
    (note,) = hubspot.objects["notes"].values()
    assert "Intent: pricing" in note["hs_note_body"] and "Lead score: 64 / 100" in note["hs_note_body"]
    contact_id = next(iter(hubspot.objects["contacts"]))
    assert {a[2] for a in hubspot.associations} == {contact_id}
    assert len(hubspot.calls("POST", r"/contacts$")) == 1


def test_an_existing_crm_contact_is_matched_by_phone_not_duplicated(tenant, hubspot):
    hubspot.objects["contacts"]["77"] = {"phone": "+13055550142", "firstname": "Ines", "email": "old@correo.example"}
    connect(tenant, "hubspot")

    _, outcome = deliver(enriched(patient(tenant)))

    assert outcome == "succeeded"
    assert list(hubspot.objects["contacts"]) == ["77"]
    assert hubspot.objects["contacts"]["77"]["email"] == "ines.pena@correo.example"
    assert CrmRecordMap.objects.get(kind="customer").remote_id == "77"


def test_redelivery_and_rescoring_never_duplicate_the_contact_or_activity(tenant, hubspot):
    connect(tenant, "hubspot")
    sms = enriched(patient(tenant))
    delivery, _ = deliver(sms)
    assert crm_deliveries_enqueue(interaction_id=sms.pk) == []  # same enrichment version: no second row
    assert crm_delivery_attempt(delivery_id=delivery.pk) == "skipped"

    Interaction.objects.filter(pk=sms.pk).update(lead_score=91, enriched_at=timezone.now())  # re-scored
    _, outcome = deliver(sms)

    assert outcome == "succeeded"
    assert len(hubspot.objects["contacts"]) == 1 and len(hubspot.objects["notes"]) == 1
    (note,) = hubspot.objects["notes"].values()
    assert "Lead score: 91 / 100" in note["hs_note_body"]
    assert len(hubspot.calls("PATCH", r"/notes/\d+$")) == 1


def test_429_with_retry_after_waits_then_writes_once(tenant, hubspot):
    connect(tenant, "hubspot")
    hubspot.fail_next(
        "POST",
        r"/objects/calls$",
        429,
        {
            "status": "error",
            "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": "c0ffee00-0000-4000-8000-000000000429",
            "policyName": "SECONDLY",
        },
        {"Retry-After": "120", "X-HubSpot-RateLimit-Remaining": "0"},
    )
    t0 = timezone.now()
    delivery, outcome = deliver(enriched(patient(tenant), channel="voicemail"), now=t0)

    assert outcome == "retrying"
    delivery.refresh_from_db()
    assert delivery.next_attempt_at >= t0 + timedelta(seconds=120)
    assert delivery.last_status_code == 429 and "RATE_LIMIT" not in delivery.last_error  # the message is shown
    assert "secondly limit" in delivery.last_error
    assert crm_delivery_attempt(delivery_id=delivery.pk, now=t0 + timedelta(seconds=60)) == "skipped"
    assert crm_delivery_attempt(delivery_id=delivery.pk, now=t0 + timedelta(seconds=125)) == "succeeded"
    assert len(hubspot.objects["contacts"]) == 1 and len(hubspot.objects["calls"]) == 1


def test_5xx_retries_on_the_schedule_then_fails(tenant, hubspot):
    connect(tenant, "hubspot")
    for _ in range(4):
        hubspot.fail_next("POST", r"/contacts/search$", 502, {"status": "error", "message": "Bad Gateway"})
    t = timezone.now()
    delivery, outcome = deliver(enriched(patient(tenant)), now=t)
    outcomes = [outcome]
    for _ in range(3):
        t += timedelta(hours=3)
        outcomes.append(crm_delivery_attempt(delivery_id=delivery.pk, now=t))
    assert outcomes == ["retrying", "retrying", "retrying", "failed"]
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.last_status_code == 502


def test_an_expired_access_token_is_refreshed_once_and_stored_encrypted(tenant, hubspot):
    conn = connect(tenant, "hubspot")
    hubspot.valid_tokens = {"at-rotated-elsewhere"}  # HubSpot no longer accepts at-1: 401

    _, outcome = deliver(enriched(patient(tenant)))

    assert outcome == "succeeded"
    (refresh,) = hubspot.calls("POST", r"^/oauth/v1/token$")
    assert refresh["form"] == {
        "grant_type": "refresh_token",
        "client_id": "hs-client-id",
        "client_secret": "hs-client-secret",
        "refresh_token": "rt-1",
    }
    conn.refresh_from_db()
    (new_token,) = hubspot.valid_tokens
    assert conn.access_token == new_token and conn.token_expires_at > timezone.now() + timedelta(minutes=25)
    with db.cursor() as cursor:
        cursor.execute("SELECT access_token, refresh_token FROM crm_crmconnection WHERE id = %s", [conn.pk])
        raw_access, raw_refresh = cursor.fetchone()
    assert new_token not in raw_access and "rt-1" not in raw_refresh  # Fernet at rest
    assert len(hubspot.objects["notes"]) == 1


def test_a_revoked_refresh_token_disables_the_connection_and_tells_the_admins(
    tenant, hubspot, clinic_admin, django_capture_on_commit_callbacks
):
    conn = connect(tenant, "hubspot")
    hubspot.valid_tokens, hubspot.revoked = set(), {"rt-1"}
    ines = patient(tenant)
    first, second = enriched(ines, minutes_ago=60), enriched(ines)
    (pk1,) = crm_deliveries_enqueue(interaction_id=first.pk)
    (pk2,) = crm_deliveries_enqueue(interaction_id=second.pk)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = crm_delivery_attempt(delivery_id=pk1)

    assert outcome == "disabled"
    conn.refresh_from_db()
    assert conn.status == "disabled" and "BAD_REFRESH_TOKEN" in conn.last_error
    assert CrmDelivery.objects.get(pk=pk1).status == "failed"
    assert crm_delivery_attempt(delivery_id=pk2) == "skipped"  # later rows fail without calling HubSpot
    assert CrmDelivery.objects.get(pk=pk2).last_error.startswith("connection disabled")
    assert hubspot.objects["contacts"] == {}
    (email,) = mail.outbox
    assert email.to == ["marisol.ortiz@clinica-sol.example"]
    assert "HubSpot" in email.subject and f"/admin/crm/crmconnection/{conn.pk}/change/" in email.body
    assert "Inés" not in email.body and "+1305" not in email.body  # no patient data in the alert


def test_permanent_4xx_fails_the_delivery_with_hubspots_message(tenant, hubspot):
    connect(tenant, "hubspot")
    hubspot.fail_next(
        "POST",
        r"/objects/contacts$",
        400,
        {
            "status": "error",
            "message": 'Property values were not valid: [{"isValid":false,"message":"Email address is invalid"}]',
            "correlationId": "3f2a1b00-0000-4000-8000-000000000400",
            "category": "VALIDATION_ERROR",
        },
    )
    delivery, outcome = deliver(enriched(patient(tenant, phone="", email="ines@@correo")))
    assert outcome == "failed"
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.last_status_code == 400
    assert "VALIDATION_ERROR" in delivery.last_error and "Email address is invalid" in delivery.last_error


def test_a_worker_that_dies_mid_delivery_is_redelivered_once_after_its_lease(tenant, hubspot, empty_queue):
    connect(tenant, "hubspot")
    sms = enriched(patient(tenant))
    (pk,) = crm_deliveries_enqueue(interaction_id=sms.pk)
    take_queued()
    t0 = timezone.now()
    dead_row, dead_token = _claim(pk, t0)  # the worker took the row ... and was killed (OOM, deploy)

    assert crm_redrive(now=t0 + LEASE - timedelta(seconds=5)) == 0  # its lease still holds
    assert crm_delivery_attempt(delivery_id=pk, now=t0 + timedelta(seconds=10)) == "skipped"
    after = t0 + LEASE + timedelta(seconds=1)
    assert crm_redrive(now=after) == 1
    assert crm_redrive(now=after + timedelta(seconds=5)) == 0  # queued once, not on every sweep
    assert take_queued() == [("crm.tasks.crm_deliver", [pk])]
    assert crm_delivery_attempt(delivery_id=pk, now=after) == "succeeded"

    assert _record(dead_row, dead_token, None, after) == "fenced"  # a zombie's late answer changes nothing
    row = CrmDelivery.objects.get(pk=pk)
    assert row.lease_token == dead_token + 1 and row.attempts == 2 and row.status == "succeeded"
    assert len(hubspot.objects["contacts"]) == 1 and len(hubspot.objects["notes"]) == 1


def test_enrichment_queues_the_delivery_on_commit(tenant, hubspot, empty_queue, django_capture_on_commit_callbacks):
    connect(tenant, "hubspot")
    sms = enriched(patient(tenant), enriched_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        interaction_enrich(interaction_id=sms.pk)
    (delivery,) = CrmDelivery.objects.all()
    assert delivery.version == Interaction.objects.get(pk=sms.pk).enriched_at.isoformat()
    assert ("crm.tasks.crm_deliver", [delivery.pk]) in take_queued()


def test_tenants_never_see_each_others_connection_or_records(tenant, other_tenant, hubspot):
    mine = connect(tenant, "hubspot")
    theirs = connect(other_tenant, "hubspot", access_token="at-2")
    hubspot.valid_tokens = {"at-1", "at-2"}
    deliver(enriched(patient(tenant)))
    _, outcome = deliver(enriched(patient(other_tenant, name="Chloé O’Brien", phone="+447700900123", email="")))

    assert outcome == "succeeded"
    assert CrmDelivery.objects.filter(connection=mine).count() == 1
    assert CrmDelivery.objects.filter(connection=theirs).count() == 1
    assert set(CrmRecordMap.objects.values_list("tenant_id", "connection_id")) == {
        (tenant.pk, mine.pk),
        (other_tenant.pk, theirs.pk),
    }
    tokens = [r["headers"]["authorization"] for r in hubspot.requests if r["path"].endswith("contacts")]
    assert tokens == ["Bearer at-1", "Bearer at-2"]
    CrmConnection.objects.filter(pk=theirs.pk).update(status="disabled")
    assert crm_deliveries_enqueue(interaction_id=enriched(patient(other_tenant, phone="+447700900124")).pk) == []


def test_an_enrichment_whose_signal_was_lost_is_picked_up_by_the_sweep(tenant, hubspot, empty_queue):
    connect(tenant, "hubspot")
    sms = enriched(patient(tenant), enriched_at=None)
    assert crm_deliveries_enqueue(interaction_id=sms.pk) == []  # nothing to send before it is scored
    interaction_enrich(interaction_id=sms.pk)  # committed, but the on-commit receiver never ran (worker died)
    assert not CrmDelivery.objects.exists()
    enriched_at = Interaction.objects.get(pk=sms.pk).enriched_at

    assert crm_redrive_task_at(enriched_at + timedelta(seconds=30)) == {"missed": 0, "queued": 0}  # too soon
    assert crm_redrive_task_at(enriched_at + timedelta(minutes=3)) == {"missed": 1, "queued": 1}
    assert crm_redrive_task_at(enriched_at + timedelta(minutes=4)) == {"missed": 0, "queued": 0}
    (row,) = CrmDelivery.objects.all()
    assert take_queued() == [("crm.tasks.crm_deliver", [row.pk])]
    assert crm_delivery_attempt(delivery_id=row.pk, now=enriched_at + timedelta(minutes=4)) == "succeeded"


def crm_redrive_task_at(now):
    from crm.services import crm_enqueue_missed

    return {"missed": crm_enqueue_missed(now=now), "queued": crm_redrive(now=now)}
