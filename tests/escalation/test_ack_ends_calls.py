"""Once an incident is acknowledged, every other page call still queued, ringing or in progress is hung up
(Twilio ``POST …/Calls/{Sid}.json Status=completed``), exactly once per call; the keypress call itself is left
to its own TwiML. In-process tests drive the real twilio client against the local Twilio stub; the Celery
queueing is captured and the task run in-process. The last test runs the real worker end to end."""

from __future__ import annotations

import pytest

from escalation import services, tasks
from escalation.models import NotificationAttempt
from providers import ProviderTransientError
from providers.voice import LocmemVoiceBackend
from tests.escalation.conftest import BACKUP, CLINIC_NUMBER, PRIMARY, build_oncall
from tests.escalation.steps import call_of, page_both, signed_post
from tests.processes import wait_for
from tests.stubs.twilio_api import status_callback_params


def run(queued: list[tuple]) -> None:
    """What the escalation worker does with the queued tasks (the task body, in this process)."""
    while queued:
        tasks.incident_end_calls_task(*queued.pop(0))


def sms_of(incident, to) -> NotificationAttempt:
    return NotificationAttempt.objects.get(incident=incident, channel="sms", to_number=to)


def press_1(client, attempt):
    tenant = attempt.tenant
    params = {
        "AccountSid": tenant.twilio_account_sid,
        "CallSid": attempt.provider_sid,
        "From": CLINIC_NUMBER,
        "To": attempt.to_number,
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
        "Digits": "1",
    }
    return signed_post(client, f"/twilio/escalation/call/{attempt.pk}/gather/?round=1", tenant, params)


def statuses(stub, sids):
    return [stub.calls[sid]["status"] for sid in sids]


@pytest.mark.django_db
def test_ack_by_sms_link_hangs_up_every_live_call_once(
    oncall, patient_interaction, twilio_stub, queued, django_capture_on_commit_callbacks
):
    incident = page_both(patient_interaction)
    primary, backup = call_of(incident, PRIMARY), call_of(incident, BACKUP)
    twilio_stub.set_status("calls", backup.provider_sid, "ringing")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.incident_acknowledge(
            incident=incident, responder=oncall["backup"], via="link", attempt=sms_of(incident, BACKUP)
        )
    assert queued == [(str(incident.pk),)]
    run(queued)

    for call in (primary, backup):
        requests = twilio_stub.updates(sid=call.provider_sid)
        assert [r.params["Status"] for r in requests] == ["completed"]
        call.refresh_from_db()
        assert call.hangup_sids == [call.provider_sid] and call.hung_up_at >= incident.acknowledged_at
    assert statuses(twilio_stub, [primary.provider_sid, backup.provider_sid]) == ["canceled", "canceled"]

    # a duplicate acknowledgement queues nothing; a redelivered task asks Twilio nothing
    with django_capture_on_commit_callbacks(execute=True):
        assert not services.incident_acknowledge(incident=incident, responder=oncall["primary"], via="sms")
    assert queued == []
    tasks.incident_end_calls_task(str(incident.pk))
    assert len(twilio_stub.updates()) == 2


@pytest.mark.django_db
def test_keypress_call_is_left_alone_and_the_others_end_cancelled(
    oncall, patient_interaction, twilio_stub, queued, client, django_capture_on_commit_callbacks
):
    incident = page_both(patient_interaction)
    primary, backup = call_of(incident, PRIMARY), call_of(incident, BACKUP)
    twilio_stub.set_status("calls", backup.provider_sid, "in-progress")
    with django_capture_on_commit_callbacks(execute=True):
        response = press_1(client, backup)
    assert response.status_code == 200 and b"Acknowledged" in response.content
    run(queued)

    assert [r.params["Sid"] for r in twilio_stub.updates()] == [primary.provider_sid]
    backup.refresh_from_db()
    assert backup.hangup_sids == [] and backup.hung_up_at is None and backup.acknowledged_at is not None
    assert twilio_stub.calls[backup.provider_sid]["status"] == "in-progress"

    # Twilio reports the primary's call canceled: it was hung up because of the ack, not a failed page
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
    assert (primary.status, primary.provider_status, primary.error_code) == ("cancelled", "canceled", "")


@pytest.mark.django_db
@pytest.mark.parametrize("gone", ["completed", "unknown"])
def test_call_already_over_counts_as_ended(
    oncall, patient_interaction, twilio_stub, queued, gone, django_capture_on_commit_callbacks
):
    """Twilio answers 400/21220 for a call that already ended, 404 for one it does not know: done, no retry."""
    incident = page_both(patient_interaction)
    primary = call_of(incident, PRIMARY)
    if gone == "completed":
        twilio_stub.set_status("calls", primary.provider_sid, "completed")
    else:
        del twilio_stub.calls[primary.provider_sid]
    with django_capture_on_commit_callbacks(execute=True):
        services.incident_acknowledge(
            incident=incident, responder=oncall["backup"], via="link", attempt=sms_of(incident, BACKUP)
        )
    run(queued)  # does not raise: nothing to retry

    assert len(twilio_stub.updates(sid=primary.provider_sid)) == 1
    primary.refresh_from_db()
    assert primary.hangup_sids == [primary.provider_sid] and primary.hung_up_at is not None
    tasks.incident_end_calls_task(str(incident.pk))
    assert len(twilio_stub.updates(sid=primary.provider_sid)) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("applied", [False, True], ids=["503-not-applied", "503-after-applying"])
def test_transient_error_is_retried_only_for_that_call(
    oncall, patient_interaction, twilio_stub, queued, applied, django_capture_on_commit_callbacks
):
    incident = page_both(patient_interaction)
    primary, backup = call_of(incident, PRIMARY), call_of(incident, BACKUP)
    twilio_stub.add_fault("calls", action="update", status=503, to=PRIMARY, create=applied)
    with django_capture_on_commit_callbacks(execute=True):
        services.incident_acknowledge(incident=incident, responder=None, via="admin")
    with pytest.raises(ProviderTransientError):
        run(queued)  # the worker's autoretry (PROVIDER_RETRY) would run it again later
    primary.refresh_from_db()
    backup.refresh_from_db()
    assert primary.hangup_sids == [] and primary.hung_up_at is None  # claim released for the retry
    assert backup.hangup_sids == [backup.provider_sid]  # the other call was still hung up

    tasks.incident_end_calls_task(str(incident.pk))  # the retry
    assert len(twilio_stub.updates(sid=primary.provider_sid)) == 2
    assert len(twilio_stub.updates(sid=backup.provider_sid)) == 1
    primary.refresh_from_db()
    assert primary.hangup_sids == [primary.provider_sid] and primary.hung_up_at is not None
    assert twilio_stub.calls[primary.provider_sid]["status"] == "canceled"


@pytest.mark.django_db
def test_call_whose_sid_comes_back_after_the_ack_is_hung_up(
    oncall, patient_interaction, twilio_stub, queued, django_capture_on_commit_callbacks
):
    """The call request was in flight when the responder acked by SMS: its SID arrives later and it hangs up."""
    incident, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="x")
    outcome = services.incident_run_step(incident_id=incident.pk, fence=incident.fence, dispatch=False)
    voice = next(o for o in outcome.outbound if o.attempt.channel == "voice")
    sms = next(o for o in outcome.outbound if o.attempt.channel == "sms")
    services.attempt_deliver(outbound=sms)
    with django_capture_on_commit_callbacks(execute=True):
        services.incident_acknowledge(incident=incident, responder=oncall["primary"], via="sms", attempt=sms.attempt)
    assert queued == []  # no call had a SID yet
    with django_capture_on_commit_callbacks(execute=True):
        services.attempt_deliver(outbound=voice)
    assert len(queued) == 1
    run(queued)
    call = call_of(incident, PRIMARY)
    assert call.status == "sent" and [r.params["Sid"] for r in twilio_stub.updates()] == [call.provider_sid]


@pytest.mark.django_db
def test_locmem_backend_records_hangups(oncall, patient_interaction, queued, django_capture_on_commit_callbacks):
    LocmemVoiceBackend.hangups.clear()
    incident = page_both(patient_interaction)
    sids = {call_of(incident, to).provider_sid for to in (PRIMARY, BACKUP)}
    with django_capture_on_commit_callbacks(execute=True):
        services.incident_acknowledge(incident=incident, responder=None, via="admin")
    run(queued)
    tasks.incident_end_calls_task(str(incident.pk))
    assert sorted(h["sid"] for h in LocmemVoiceBackend.hangups) == sorted(sids)
    assert all(h["known"] and h["tenant"] == incident.tenant_id for h in LocmemVoiceBackend.hangups)
    LocmemVoiceBackend.hangups.clear()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_hangs_up_the_primary_when_the_backup_presses_1(
    esc_tenant, patient_interaction, stub_worker, twilio_stub_server, client
):
    """End to end: real worker on the escalation queue, the ack over HTTP, the hang-up through the stub."""
    stub = twilio_stub_server
    build_oncall(esc_tenant, waits=(1, 60))
    stub_worker()
    incident, _ = services.incident_raise(interaction=patient_interaction, urgency=5, reason="emergency phrase")
    wait_for(
        lambda: NotificationAttempt.objects.filter(incident=incident, channel="voice", status="sent").count() == 2,
        timeout=15,
    )
    primary, backup = call_of(incident, PRIMARY), call_of(incident, BACKUP)
    stub.set_status("calls", backup.provider_sid, "in-progress")

    assert press_1(client, backup).status_code == 200
    wait_for(lambda: call_of(incident, PRIMARY).hung_up_at is not None, timeout=15)
    assert [(r.params["Sid"], r.params["Status"]) for r in stub.updates()] == [(primary.provider_sid, "completed")]
    assert stub.calls[primary.provider_sid]["status"] == "canceled"
    assert stub.calls[backup.provider_sid]["status"] == "in-progress"
