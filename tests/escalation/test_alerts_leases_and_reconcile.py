"""Admin alerts are sent at least once (SMTP errors, hung servers, dead senders), slow Twilio answers never
outlive a claim, sender threads close their connections, reconciliation is time-bound, re-drives expire, the
unalerted scan has its index, timeline rows record step and round, and admin permissions hold. Real PostgreSQL,
Redis, SMTP sockets and the Twilio stub; nothing of ours is mocked."""

from __future__ import annotations

import json
import os
import socket
from datetime import timedelta
from email.utils import formatdate

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core import mail
from django.db import connection, connections
from django.utils import timezone

from callsphere.celery import app as celery_app
from conversations.models import Interaction
from escalation import services, tasks
from escalation.models import Incident, NotificationAttempt
from escalation.services import attempts as attempts_service
from escalation.services.incidents import ALERT_RETRY_SECONDS
from identity.models import TenantMembership
from providers.voice import TwilioVoiceBackend
from tests import processes
from tests.escalation.conftest import CLINIC_NUMBER, PATIENT_NAME, PRIMARY
from tests.escalation.steps import call_params, call_post, deliver, raise_and_fire
from tests.factories import InteractionFactory
from tests.processes import wait_for

pytestmark = pytest.mark.django_db


# --- R1: the "unacknowledged" admin alert is at-least-once ----------------------------------------------------


@pytest.fixture
def exhausted(oncall, patient_interaction, django_user_model):
    admin = django_user_model.objects.create_user("boss", "boss@clinic.example", "x")
    TenantMembership.objects.create(user=admin, tenant=oncall["policy"].tenant, role="admin")
    now = timezone.now() - timedelta(seconds=300)
    incident, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="x", at=now)
    for _ in range(3):
        incident.refresh_from_db()
        services.incident_run_step(incident_id=incident.pk, fence=incident.fence, now=now, dispatch=False)
        now += timedelta(seconds=61)
    incident.refresh_from_db()
    assert incident.status == "unacknowledged"
    return incident


def test_smtp_error_leaves_the_alert_unsent_for_a_retry(exhausted, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", processes.free_port()  # nothing listens: refused
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    with pytest.raises(OSError):
        services.incident_alert_admins(incident_id=exhausted.pk)
    exhausted.refresh_from_db()
    assert exhausted.admins_alerted_at is None and exhausted.admins_alert_lease_until is not None
    # the task retries SMTP/socket errors; the auditor leaves it to that retry while the lease holds ...
    assert OSError in tasks.incident_alert_admins.autoretry_for and tasks.incident_alert_admins.max_retries
    assert services.escalation_audit(now=timezone.now())["alerts"] == 0
    # ... and re-drives it once the lease ran out; the SMTP server is back, so the mail goes out
    later = timezone.now() + timedelta(seconds=ALERT_RETRY_SECONDS + 1)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert services.escalation_audit(now=later)["alerts"] == 1
    assert services.incident_alert_admins(incident_id=exhausted.pk, now=later) == 1
    exhausted.refresh_from_db()
    assert exhausted.admins_alerted_at and exhausted.admins_alert_lease_until is None
    assert len(mail.outbox) == 1 and services.escalation_audit(now=later)["alerts"] == 0


def test_hung_smtp_server_times_out_instead_of_hanging_the_worker(exhausted, settings):
    assert settings.EMAIL_TIMEOUT and settings.EMAIL_TIMEOUT > 0  # Django's default (None) waits forever
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never says hello
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", listener.getsockname()[1]
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = 0.5
        with pytest.raises(OSError):  # socket.timeout
            services.incident_alert_admins(incident_id=exhausted.pk)
    finally:
        listener.close()
    exhausted.refresh_from_db()
    assert exhausted.admins_alerted_at is None


def test_a_sender_that_died_holding_the_lease_is_redriven_after_it(exhausted):
    Incident.objects.filter(pk=exhausted.pk).update(admins_alert_lease_until=timezone.now() + timedelta(seconds=150))
    assert services.incident_alert_admins(incident_id=exhausted.pk) == 0  # someone holds it: no duplicate
    assert services.escalation_audit()["alerts"] == 0
    later = timezone.now() + timedelta(seconds=151)
    assert services.escalation_audit(now=later)["alerts"] == 1
    assert services.incident_alert_admins(incident_id=exhausted.pk, now=later) == 1 and len(mail.outbox) == 1


# --- R5: a slow Twilio request is not presumed dead, and a duplicate call still takes the keypress -----------


def test_stale_after_outlasts_a_slow_connect_plus_read(settings):
    settings.TWILIO_TIMEOUT_SECONDS = 10.0
    assert attempts_service.stale_after() >= timedelta(seconds=2 * 10.0 + 5)


def test_duplicate_call_of_a_reclaimed_try_still_acknowledges(oncall, patient_interaction, twilio_stub, client):
    """Try 1 is in flight when its claim is presumed dead; try 2 finds nothing and calls again; then try 1
    returns. The responder answers the FIRST call and presses 1: accepted as the attempt's."""
    incident, outcome = raise_and_fire(patient_interaction)
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    first_try = next(o for o in outcome.outbound if o.attempt.pk == call.pk)
    NotificationAttempt.objects.filter(pk=call.pk).update(claimed_at=timezone.now() - timedelta(minutes=5))
    services.attempt_send(attempt_id=call.pk)  # the auditor's re-drive: tries=2, reconciled, nothing found
    services.attempt_deliver(outbound=first_try)  # the slow first request finally comes back
    call.refresh_from_db()
    second, first = [c["sid"] for c in twilio_stub.created("calls", to=PRIMARY)]  # in the order Twilio got them
    assert call.tries == 2 and call.status == "sent"
    assert call.provider_sid == second and call.extra_sids == [first]

    # a status callback of the duplicate does not rewrite the attempt's status
    status = call_post(
        client,
        f"/twilio/escalation/status/{call.pk}/",
        incident.tenant,
        call_params(incident.tenant, call, CallSid=first, CallStatus="no-answer"),
    )
    assert status.status_code == 204
    call.refresh_from_db()
    assert call.status == "sent"
    prompt = call_post(
        client,
        f"/twilio/escalation/call/{call.pk}/",
        incident.tenant,
        call_params(incident.tenant, call, CallSid=first),
    )
    assert prompt.status_code == 200 and b"<Gather" in prompt.content
    assert PATIENT_NAME.split()[-1].encode() not in prompt.content
    gather = call_post(
        client,
        f"/twilio/escalation/call/{call.pk}/gather/?round=1",
        incident.tenant,
        call_params(incident.tenant, call, CallSid=first, Digits="1"),
    )
    assert gather.status_code == 200 and b"Acknowledged" in gather.content
    incident.refresh_from_db()
    assert (incident.status, incident.ack_via) == ("acknowledged", "keypress")
    # a SID of no try of this attempt is still refused
    assert (
        call_post(
            client,
            f"/twilio/escalation/call/{call.pk}/",
            incident.tenant,
            call_params(incident.tenant, call, CallSid="CA" + "0" * 32),
        ).status_code
        == 404
    )


# --- R6: sender threads keep no database connection -------------------------------------------------------------


def _backends(application_name: str) -> int:
    """Connections to the test database opened under ``application_name`` (other than this thread's own)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s AND pid <> pg_backend_pid()",
            [application_name],
        )
        return cur.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_sender_threads_close_their_connections(oncall, patient_interaction, twilio_stub):
    assert 8 <= attempts_service.POOL_THREADS <= 16
    db = connections.settings["default"]
    old_age, old_options = db.get("CONN_MAX_AGE", 0), db.get("OPTIONS", {})
    # connections opened from here on carry a name of their own: other processes' connections (a worker of
    # an earlier test still exiting) are not counted
    tag = f"sender-threads-{os.getpid()}"
    db["CONN_MAX_AGE"] = 60  # what the workers run with (Procfile)
    db["OPTIONS"] = {**old_options, "application_name": tag}
    try:
        incident, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="x")
        outcome = services.incident_run_step(incident_id=incident.pk, fence=incident.fence, dispatch=False)
        services.attempts_dispatch(outbound=outcome.outbound)  # two pages: two sender threads
        assert set(NotificationAttempt.objects.filter(incident=incident).values_list("status", flat=True)) == {"sent"}
        # a closed connection's server process may take a moment to leave pg_stat_activity; a kept one stays
        # for CONN_MAX_AGE (60 s)
        wait_for(lambda: _backends(tag) == 0, timeout=10)
    finally:
        db["CONN_MAX_AGE"], db["OPTIONS"] = old_age, old_options


# --- R7: reconciling a call never latches onto an older or another attempt's call ------------------------------


def _stale_unsent_call(incident) -> NotificationAttempt:
    """The voice attempt as a worker that died before its request left would leave it."""
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    NotificationAttempt.objects.filter(pk=call.pk).update(
        status="sending", provider_sid="", provider_status="", claimed_at=timezone.now() - timedelta(minutes=5)
    )
    return call


def test_reconcile_ignores_a_call_older_than_the_attempt(oncall, patient_interaction, twilio_stub):
    old = TwilioVoiceBackend().place_call(
        tenant=oncall["policy"].tenant, from_=CLINIC_NUMBER, to=PRIMARY, twiml="<Response/>"
    )
    twilio_stub.calls[old.sid]["date_created"] = formatdate(
        (timezone.now() - timedelta(minutes=10)).timestamp(), usegmt=True
    )  # yesterday's unrelated call
    incident, outcome = raise_and_fire(patient_interaction)
    call = _stale_unsent_call(incident)
    services.attempt_send(attempt_id=call.pk)
    call.refresh_from_db()
    assert call.status == "sent" and call.provider_sid not in ("", old.sid)
    assert len(twilio_stub.created("calls", to=PRIMARY)) == 2


def test_reconcile_skips_a_call_recorded_on_another_attempt(oncall, patient_interaction, esc_tenant, twilio_stub):
    other, other_outcome = raise_and_fire(InteractionFactory(conversation__tenant=esc_tenant, tenant=esc_tenant))
    deliver(other_outcome)  # another incident just called the same responder
    incident, _ = raise_and_fire(patient_interaction)
    call = _stale_unsent_call(incident)
    services.attempt_send(attempt_id=call.pk)
    call.refresh_from_db()
    other_sid = NotificationAttempt.objects.get(incident=other, channel="voice").provider_sid
    assert call.status == "sent" and call.provider_sid not in ("", other_sid)


# --- R9: re-drives expire and are named ---------------------------------------------------------------------


def test_auditor_redrives_expire_and_have_deterministic_ids(oncall, patient_interaction):
    with celery_app.connection_for_write() as conn:
        broker = conn.default_channel.client  # the real Redis the workers read
        broker.delete("escalation")
        incident, outcome = raise_and_fire(patient_interaction)
        services.escalation_audit(now=timezone.now() + timedelta(seconds=65))
        headers = [json.loads(raw)["headers"] for raw in broker.lrange("escalation", 0, -1)]
        broker.delete("escalation")
    ids = {h["id"] for h in headers}
    assert f"esc-step-{incident.pk}-{incident.fence}" in ids
    attempt_ids = {f"esc-send-{pk}-1" for pk in outcome.attempt_ids}
    assert attempt_ids <= ids  # stale 'sending' claims: re-driven under a name of the try they follow
    assert all(h["expires"] for h in headers)
    assert (
        settings.CELERY_BEAT_SCHEDULE["escalation-audit"]["options"]["expires"]
        <= (settings.CELERY_BEAT_SCHEDULE["escalation-audit"]["schedule"])
    )


# --- R11: the auditor's unalerted scan has its partial index ------------------------------------------------------


def test_unalerted_scan_has_a_partial_index():
    with connection.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'incident_unalerted'")
        (definition,) = cur.fetchone()
    assert "unacknowledged" in definition and "admins_alerted_at IS NULL" in definition


# --- R13: timeline rows record their step -----------------------------------------------------------------------


def test_timeline_rows_record_step_and_round(oncall, patient_interaction, twilio_stub):
    incident, outcome = raise_and_fire(patient_interaction)
    deliver(outcome)
    rows = Interaction.objects.filter(metadata__escalation__incident_id=str(incident.pk))
    assert rows.count() == 2
    for row in rows:
        meta = row.metadata["escalation"]
        assert (meta["step"], meta["repeat"]) == (1, 1) and meta["attempt_id"] and meta["provider_sid"]


# --- S7: view-only staff cannot acknowledge nor export ----------------------------------------------------------


def _staff(django_user_model, tenant, name, *codenames):
    user = django_user_model.objects.create_user(name, f"{name}@clinic.example", "pw", is_staff=True)
    TenantMembership.objects.create(user=user, tenant=tenant, role="staff")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="escalation", codename__in=codenames))
    return user


def test_view_only_staff_cannot_acknowledge_from_admin(oncall, patient_interaction, client, django_user_model):
    incident, _ = raise_and_fire(patient_interaction)
    url = "/admin/escalation/incident/"
    action = {"action": "acknowledge_selected", "_selected_action": [str(incident.pk)]}
    client.force_login(_staff(django_user_model, incident.tenant, "viewer", "view_incident"))
    assert client.get(url).status_code == 200
    client.post(url, action)
    incident.refresh_from_db()
    assert incident.status == "triggered"
    client.force_login(_staff(django_user_model, incident.tenant, "editor", "view_incident", "change_incident"))
    client.post(url, action)
    incident.refresh_from_db()
    assert (incident.status, incident.ack_via) == ("acknowledged", "admin")


def test_sla_export_needs_view_permission(oncall, patient_interaction, client, django_user_model):
    incident, _ = raise_and_fire(patient_interaction)
    url = "/admin/escalation/incident/sla-export/?start=2020-01-01&end=2099-01-01"
    client.force_login(_staff(django_user_model, incident.tenant, "nobody"))
    assert client.get(url).status_code == 403
    client.force_login(_staff(django_user_model, incident.tenant, "half", "view_incident"))
    assert client.get(url).status_code == 403
    client.force_login(
        _staff(django_user_model, incident.tenant, "reporter", "view_incident", "view_notificationattempt")
    )
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")


def test_exhausted_alert_skips_deactivated_admins(exhausted, django_user_model):
    former = django_user_model.objects.create_user("former", "former@clinic.example", "x", is_active=False)
    TenantMembership.objects.create(user=former, tenant=exhausted.tenant, role="admin")
    assert services.incident_alert_admins(incident_id=exhausted.pk) == 1
    assert [m.to for m in mail.outbox] == [["boss@clinic.example"]]
