"""A hang-up claim is a lease: a worker that died between claiming a CallSid (``hangup_claims``) and asking Twilio
leaves a claim that expires after ``stale_after()``, and the auditor re-queues the hang-up of a recently
acknowledged incident whose calls are still to end with no live claim. A live claim is never doubled; asking
again for a call that did end is harmless (Twilio 21220). A transient error (429/5xx) keeps the claim as a hold
for the task's retry, so the auditor does not pile requests onto a throttled Twilio while the task backs off.
The real twilio client runs against the local stub."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from escalation import services, tasks
from escalation.models import Incident, NotificationAttempt
from escalation.services import hangups
from escalation.services.attempts import stale_after
from escalation.services.audit import HANGUP_WINDOW, PENDING_GRACE, REDRIVE_EXPIRES
from escalation.services.hangups import RETRY_HOLD
from providers import ProviderTransientError
from tests.escalation.conftest import BACKUP, PRIMARY
from tests.escalation.steps import call_of, page_both, signed_post
from tests.stubs.twilio_api import status_callback_params

pytestmark = pytest.mark.django_db


@pytest.fixture
def redrives(monkeypatch):
    """What the auditor queues with ``incident_end_calls_task.apply_async``: ``(args, options)`` pairs."""
    sent: list[tuple] = []
    monkeypatch.setattr(
        tasks.incident_end_calls_task, "apply_async", lambda args, **options: sent.append((args, options))
    )
    return sent


def acknowledged_with_claims(interaction, queued, capture, *, claims: dict[str, timedelta], ago: timedelta):
    """Both calls live, the incident acknowledged ``ago`` and its hang-up task lost (never run), each call's
    SID left claimed by a worker ``claims[to]`` ago (no entry: never claimed)."""
    incident = page_both(interaction)
    with capture(execute=True):
        services.incident_acknowledge(incident=incident, responder=None, via="admin")
    assert queued == [(str(incident.pk),)]
    queued.clear()  # the worker that took it died
    now = timezone.now()
    Incident.objects.filter(pk=incident.pk).update(acknowledged_at=now - ago)
    for to, age in claims.items():
        call = call_of(incident, to)
        NotificationAttempt.objects.filter(pk=call.pk).update(
            hangup_claims={call.provider_sid: (now - age).isoformat()}
        )
    return incident, now


def test_the_task_is_requeued_if_its_worker_is_lost():
    task = tasks.incident_end_calls_task
    assert task.acks_late and task.reject_on_worker_lost


def test_a_dead_claim_expires_and_the_auditor_redrives_the_hangup(
    oncall, patient_interaction, twilio_stub, queued, redrives, django_capture_on_commit_callbacks
):
    lease = stale_after()
    incident, now = acknowledged_with_claims(
        patient_interaction,
        queued,
        django_capture_on_commit_callbacks,
        ago=timedelta(minutes=1),
        claims={PRIMARY: lease + timedelta(seconds=1), BACKUP: timedelta(seconds=1)},
    )  # dead, live
    primary, backup = call_of(incident, PRIMARY), call_of(incident, BACKUP)

    assert services.escalation_audit(now=now)["hangups"] == 1
    assert redrives == [((str(incident.pk),), {"task_id": f"esc-hangup-{incident.pk}", "expires": REDRIVE_EXPIRES})]
    tasks.incident_end_calls_task(*redrives.pop()[0])  # the worker runs the re-driven task
    assert [r.params["Sid"] for r in twilio_stub.updates()] == [primary.provider_sid]  # the live claim is left alone
    primary.refresh_from_db()
    backup.refresh_from_db()
    assert primary.hangup_sids == [primary.provider_sid] and primary.hangup_claims == {}
    assert primary.hung_up_at is not None and twilio_stub.calls[primary.provider_sid]["status"] == "canceled"
    assert backup.hangup_sids == [] and list(backup.hangup_claims) == [backup.provider_sid]

    assert services.escalation_audit(now=now)["hangups"] == 0  # the backup's request may still be under way
    assert services.escalation_audit(now=now + lease)["hangups"] == 1  # ... until its claim expired too
    assert services.escalation_audit(now=now + HANGUP_WINDOW)["hangups"] == 0  # long over by then


def test_asking_again_for_a_call_the_dead_worker_did_end_is_harmless(
    oncall, patient_interaction, twilio_stub, queued, redrives, django_capture_on_commit_callbacks
):
    """The worker's request went through before it died (and Twilio's status callback never came): the
    re-driven request gets 21220 (call already over), which counts as ended."""
    incident, now = acknowledged_with_claims(
        patient_interaction,
        queued,
        django_capture_on_commit_callbacks,
        ago=timedelta(minutes=1),
        claims={PRIMARY: stale_after() + timedelta(seconds=1)},
    )
    primary = call_of(incident, PRIMARY)
    twilio_stub.set_status("calls", primary.provider_sid, "canceled")

    assert services.escalation_audit(now=now)["hangups"] == 1
    tasks.incident_end_calls_task(*redrives.pop()[0])  # does not raise
    primary.refresh_from_db()
    assert primary.hangup_sids == [primary.provider_sid] and primary.hung_up_at is not None
    assert [u.params["Sid"] for u in twilio_stub.updates(sid=primary.provider_sid)] == [primary.provider_sid]
    tasks.incident_end_calls_task(str(incident.pk))  # a redelivery: answered already, never asked again
    assert len(twilio_stub.updates(sid=primary.provider_sid)) == 1


def test_a_status_callback_of_a_call_under_a_claim_is_a_cancellation(
    oncall, patient_interaction, twilio_stub, queued, client, django_capture_on_commit_callbacks
):
    """Twilio may report the call canceled before our hang-up request returned: not a failed page."""
    incident, _ = acknowledged_with_claims(
        patient_interaction,
        queued,
        django_capture_on_commit_callbacks,
        ago=timedelta(seconds=5),
        claims={PRIMARY: timedelta(seconds=1)},
    )
    primary = call_of(incident, PRIMARY)
    item = twilio_stub.calls[primary.provider_sid]
    assert (
        signed_post(
            client,
            f"/twilio/escalation/status/{primary.pk}/",
            incident.tenant,
            status_callback_params(item, "canceled"),
        ).status_code
        == 204
    )
    primary.refresh_from_db()
    assert (primary.status, primary.error_code) == ("cancelled", "")


def test_the_auditor_leaves_a_fresh_acknowledgement_to_its_own_task(
    oncall, patient_interaction, twilio_stub, queued, redrives, django_capture_on_commit_callbacks
):
    incident, now = acknowledged_with_claims(
        patient_interaction, queued, django_capture_on_commit_callbacks, ago=timedelta(0), claims={}
    )
    assert services.escalation_audit(now=now)["hangups"] == 0  # its task was queued a moment ago
    assert services.escalation_audit(now=now + PENDING_GRACE)["hangups"] == 1  # ... and was lost
    assert redrives[0][0] == (str(incident.pk),)


def throttled_hangup(interaction, queued, capture, twilio_stub, *, times: int = 1):
    """Both calls live, the incident acknowledged, and Twilio answering the primary's hang-up with 429
    ``times`` times: the task's first run raises for its autoretry. Returns ``(incident, primary, held)``,
    ``held`` the date of the primary's claim (UTC) after the failure."""
    incident = page_both(interaction)
    twilio_stub.add_fault("calls", action="update", status=429, to=PRIMARY, times=times)
    with capture(execute=True):
        services.incident_acknowledge(incident=incident, responder=None, via="admin")
    before = timezone.now()
    with pytest.raises(ProviderTransientError):
        tasks.incident_end_calls_task(*queued.pop())
    after = timezone.now()
    primary = call_of(incident, PRIMARY)
    held = datetime.fromisoformat(primary.hangup_claims[primary.provider_sid])
    assert before + RETRY_HOLD <= held <= after + RETRY_HOLD  # held for the retry, however late it may come
    assert primary.hangup_sids == [] and call_of(incident, BACKUP).hung_up_at is not None  # the other call ended
    incident.refresh_from_db()
    return incident, primary, held


def test_after_a_transient_error_the_auditor_leaves_the_retrying_task_alone(
    oncall, patient_interaction, twilio_stub, queued, redrives, django_capture_on_commit_callbacks
):
    incident, primary, held = throttled_hangup(
        patient_interaction, queued, django_capture_on_commit_callbacks, twilio_stub
    )
    for at in (incident.acknowledged_at + PENDING_GRACE, held, held + stale_after() - timedelta(seconds=1)):
        assert services.escalation_audit(now=at)["hangups"] == 0, at  # the retry may still come
    assert redrives == [] and len(twilio_stub.updates(sid=primary.provider_sid)) == 1

    assert services.escalation_audit(now=held + stale_after())["hangups"] == 1  # it never came: its task died
    tasks.incident_end_calls_task(*redrives.pop()[0])
    primary.refresh_from_db()
    assert primary.hangup_sids == [primary.provider_sid] and primary.hangup_claims == {}
    assert len(twilio_stub.updates(sid=primary.provider_sid)) == 2


def test_the_retry_takes_its_hold_over_and_a_second_failure_holds_it_again(
    oncall, patient_interaction, twilio_stub, queued, redrives, django_capture_on_commit_callbacks
):
    incident, primary, held = throttled_hangup(
        patient_interaction, queued, django_capture_on_commit_callbacks, twilio_stub, times=2
    )
    with pytest.raises(ProviderTransientError):
        tasks.incident_end_calls_task(str(incident.pk))  # the retry, at once (the backoff's jitter allows it)
    primary.refresh_from_db()
    held_again = datetime.fromisoformat(primary.hangup_claims[primary.provider_sid])
    assert held_again > held and len(twilio_stub.updates(sid=primary.provider_sid)) == 2
    assert services.escalation_audit(now=held + stale_after())["hangups"] == 0  # the task is still on it

    tasks.incident_end_calls_task(str(incident.pk))  # the next retry: Twilio answers now
    primary.refresh_from_db()
    assert primary.hangup_sids == [primary.provider_sid] and primary.hangup_claims == {}
    assert primary.hung_up_at is not None and twilio_stub.calls[primary.provider_sid]["status"] == "canceled"
    tasks.incident_end_calls_task(str(incident.pk))  # a redelivery: answered already, never asked again
    assert len(twilio_stub.updates(sid=primary.provider_sid)) == 3 and redrives == []


def test_a_hold_is_taken_over_by_one_run_only(
    oncall, patient_interaction, twilio_stub, queued, redrives, django_capture_on_commit_callbacks
):
    """Two runs reach the held SID (the retry and a redelivered copy): the first turns the hold into an
    ordinary claim of a request under way, which the second must leave alone."""
    _, primary, _ = throttled_hangup(patient_interaction, queued, django_capture_on_commit_callbacks, twilio_stub)
    assert hangups._hangup_claim(primary.pk, primary.provider_sid)
    assert not hangups._hangup_claim(primary.pk, primary.provider_sid)
