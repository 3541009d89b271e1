"""The escalation pipeline's dead-man's switch: heartbeats (auditor, canary), ``/healthz/escalation``, the admin
banner, and one admin SMS per outage sent by the web process (Twilio replaced at its HTTP boundary)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from escalation import tasks
from escalation.models import OutageAlert, PipelineHeartbeat, PipelineOutage, Responder
from escalation.services import heartbeat
from identity.models import TenantMembership
from tests.broker import take_queued
from tests.escalation.conftest import CLINIC_NUMBER, PRIMARY, build_oncall
from tests.escalation.steps import ADMIN_PHONE, make_admin
from tests.factories import PhoneNumberFactory, TenantFactory

pytestmark = pytest.mark.django_db
AUDITOR, CANARY = PipelineHeartbeat.Source.AUDITOR, PipelineHeartbeat.Source.CANARY


@pytest.fixture(autouse=True)
def _no_earlier_beats(db):
    """Start from no heartbeat and no outage (a web process of another module's test may have left rows)."""
    PipelineHeartbeat.objects.all().delete()
    PipelineOutage.objects.all().delete()


@pytest.fixture
def clinic(esc_tenant):
    build_oncall(esc_tenant)
    make_admin(esc_tenant)
    return esc_tenant


def beat_all(at=None):
    for source in (AUDITOR, CANARY):
        heartbeat.heartbeat_record(source=source, at=at)


def texts(stub):
    return stub.created("messages", to=ADMIN_PHONE)


def test_healthz_503_without_heartbeats_then_200_once_both_beat(clinic, client, twilio_stub):
    response = client.get("/healthz/escalation")
    assert response.status_code == 503 and set(response.json()["stale"]) == {"auditor", "canary"}
    heartbeat.heartbeat_record(source=AUDITOR)
    assert client.get("/healthz/escalation").json()["stale"] == ["canary"]  # one alone is not enough
    heartbeat.heartbeat_record(source=CANARY, lag_seconds=0.25)
    response = client.get("/healthz/escalation")
    assert response.status_code == 200 and response.json()["beats"]["canary"]["lag_seconds"] == 0.25


def test_a_heartbeat_older_than_the_max_age_is_an_outage(clinic, client, settings, twilio_stub):
    settings.ESCALATION_HEARTBEAT_MAX_AGE = 30
    beat_all(at=timezone.now() - timedelta(seconds=29))
    assert client.get("/healthz/escalation").status_code == 200
    beat_all(at=timezone.now() - timedelta(seconds=31))
    assert client.get("/healthz/escalation").status_code == 503


def test_one_admin_text_per_outage_and_a_new_outage_texts_again(clinic, client, twilio_stub):
    for _ in range(3):  # the watchdog and every monitor poll check again
        assert client.get("/healthz/escalation").status_code == 503
        heartbeat.pipeline_watch()
    sent = texts(twilio_stub)
    assert len(sent) == 1 and sent[0]["from"] == CLINIC_NUMBER and "DOWN" in sent[0]["body"]
    assert "Sunrise Clinic" in sent[0]["body"] and PRIMARY not in [m["to"] for m in twilio_stub.created("messages")]
    outage = PipelineOutage.objects.get()
    assert OutageAlert.objects.get().sent_at and client.get("/healthz/escalation").json()["outage_since"]

    beat_all()
    assert client.get("/healthz/escalation").status_code == 200
    outage.refresh_from_db()
    assert outage.ended_at is not None and len(texts(twilio_stub)) == 1

    beat_all(at=timezone.now() - timedelta(minutes=5))
    heartbeat.pipeline_watch()
    assert PipelineOutage.objects.count() == 2 and len(texts(twilio_stub)) == 2


def test_only_admins_of_their_own_tenant_with_escalation_on_are_texted(clinic, twilio_stub):
    make_admin(clinic, phone="+15557770188", role="staff")  # staff, not admin
    other = TenantFactory()
    PhoneNumberFactory(tenant=other, number="+15550100007")
    outsider = make_admin(other, phone="+15557770177")  # escalation not set up for that tenant
    # an admin of another tenant whose responder sits in this one: not this tenant's admin
    stray = get_user_model().objects.create_user(username="stray", password="x", is_staff=True)
    TenantMembership.objects.create(user=stray, tenant=other, role="admin")
    Responder.objects.create(tenant=clinic, name="Stray", phone="+15557770166", user=stray)
    heartbeat.pipeline_watch()
    assert [m["to"] for m in twilio_stub.created("messages")] == [ADMIN_PHONE]
    assert outsider.responder.phone not in [m["to"] for m in twilio_stub.created("messages")]


def test_a_transient_failure_is_retried_after_the_lease_a_permanent_one_never(clinic, twilio_stub):
    make_admin(clinic, phone="+15557770155", username="second")
    twilio_stub.add_fault("messages", status=503, to=ADMIN_PHONE)
    twilio_stub.add_fault("messages", status=400, code=21610, to="+15557770155")
    now = timezone.now()
    assert heartbeat.pipeline_watch(now=now) is not None
    assert heartbeat.outage_alert_admins(outage=PipelineOutage.objects.get(), now=now + timedelta(seconds=10)) == 0
    later = now + heartbeat.ALERT_LEASE + timedelta(seconds=1)
    assert heartbeat.outage_alert_admins(outage=PipelineOutage.objects.get(), now=later) == 1
    assert len(texts(twilio_stub)) == 1
    refused = OutageAlert.objects.get(to_number="+15557770155")
    assert refused.sent_at is None and refused.error.startswith("permanent")
    assert heartbeat.outage_alert_admins(outage=PipelineOutage.objects.get(), now=later + timedelta(hours=1)) == 0


def test_at_most_one_open_outage_by_constraint(db):
    PipelineOutage.objects.create(started_at=timezone.now())
    with pytest.raises(IntegrityError), transaction.atomic():
        PipelineOutage.objects.create(started_at=timezone.now())


def test_one_alert_per_outage_tenant_and_number_by_constraint(clinic):
    outage = PipelineOutage.objects.create(started_at=timezone.now())
    OutageAlert.objects.create(outage=outage, tenant=clinic, to_number=ADMIN_PHONE, claimed_at=timezone.now())
    with pytest.raises(IntegrityError), transaction.atomic():
        OutageAlert.objects.create(outage=outage, tenant=clinic, to_number=ADMIN_PHONE, claimed_at=timezone.now())


def test_admin_shows_a_red_banner_while_down(clinic, twilio_stub):
    client = Client()
    client.force_login(get_user_model().objects.get(username=f"admin-{ADMIN_PHONE}"))
    page = client.get("/admin/")
    assert page.status_code == 200 and b"URGENT PAGING IS DOWN" in page.content
    beat_all()
    assert b"URGENT PAGING IS DOWN" not in client.get("/admin/").content


def test_auditor_beats_and_queues_the_canary_which_beats_with_its_lag(db, empty_queue):
    take_queued("escalation")
    tasks.escalation_audit.apply()
    assert PipelineHeartbeat.objects.filter(source=AUDITOR).exists()
    queued = take_queued("escalation")
    assert [name for name, _ in queued] == ["escalation.tasks.escalation_canary"]
    sent_at = (timezone.now() - timedelta(seconds=2)).isoformat()
    tasks.escalation_canary.apply(args=(sent_at,))
    canary = PipelineHeartbeat.objects.get(source=CANARY)
    assert canary.lag_seconds >= 2
