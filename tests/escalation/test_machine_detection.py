"""Page calls detect answering machines: placed with ``Url`` = the prompt webhook and ``MachineDetection=Enable``,
Twilio posts ``AnsweredBy`` (human, machine_start, fax, unknown) to that webhook once it knows who answered.
A machine or fax gets a bare hang-up, the attempt fails and the ladder falls through; ``human`` and
``unknown`` get the prompt. The real twilio client talks to the local Twilio stub; webhooks are signed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app import twilio_payloads
from escalation import services
from escalation.models import NotificationAttempt
from escalation.services import attempts
from tests.escalation.conftest import BACKUP, CLINIC_NUMBER, PATIENT_NAME, PRIMARY
from tests.escalation.steps import call_params, call_post, raise_and_fire

pytestmark = pytest.mark.django_db


def answer(client, attempt: NotificationAttempt, answered_by: str, sid: str | None = None):
    """Twilio's request of the call's ``Url`` after answering-machine detection (signed)."""
    tenant = attempt.tenant
    params = twilio_payloads.callback_answer(
        account_sid=tenant.twilio_account_sid,
        call_sid=sid or attempt.provider_sid,
        from_=CLINIC_NUMBER,
        to=attempt.to_number,
        answered_by=answered_by,
    )
    return call_post(client, f"/twilio/escalation/call/{attempt.pk}/", attempt.tenant, params)


def report(client, attempt: NotificationAttempt, status: str):
    """A status callback of the attempt's SMS (``MessageStatus``) or call (``CallStatus``)."""
    tenant = attempt.tenant
    if attempt.channel == "sms":
        params = {
            "AccountSid": tenant.twilio_account_sid,
            "MessageSid": attempt.provider_sid,
            "From": CLINIC_NUMBER,
            "To": attempt.to_number,
            "MessageStatus": status,
        }
    else:
        params = call_params(tenant, attempt, CallStatus=status)
    assert call_post(client, f"/twilio/escalation/status/{attempt.pk}/", tenant, params).status_code == 204


def is_bare_hangup(response) -> bool:
    body = response.content
    return response.status_code == 200 and b"<Hangup" in body and b"<Say" not in body and b"<Gather" not in body


def test_page_call_asks_twilio_for_machine_detection(twilio_stub, paged):  # the stub first: paged calls
    incident, _ = paged
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    (request,) = twilio_stub.creates("calls")
    assert request.params["Url"] == f"https://clinic.example.com/twilio/escalation/call/{call.pk}/"
    assert request.params["MachineDetection"] == "Enable" and "Twiml" not in request.params


@pytest.mark.parametrize("answered_by", ["machine_start", "fax"])
@pytest.mark.parametrize("answered_first", [False, True], ids=["amd-first", "in-progress-first"])
def test_machine_fails_the_call_and_the_ladder_falls_through(paged, client, answered_by, answered_first):
    incident, _ = paged
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    report(client, NotificationAttempt.objects.get(incident=incident, channel="sms"), "undelivered")
    incident.refresh_from_db()
    assert incident.next_step_at > timezone.now()  # the call is still out: the step waits for it
    if answered_first:  # the "answered" status callback came before the Url request: delivered for now
        report(client, call, "in-progress")
        call.refresh_from_db()
        assert call.status == "delivered"

    response = answer(client, call, answered_by)
    assert is_bare_hangup(response)  # nothing is said to a voicemail box
    assert PATIENT_NAME.split()[-1].encode() not in response.content
    call.refresh_from_db()
    assert (call.status, call.error_code) == ("failed", "answering-machine")
    assert call.log_interaction.metadata["escalation"]["status"] == "failed"
    incident.refresh_from_db()
    assert incident.status == "triggered" and incident.next_step_at <= timezone.now()  # fell through
    fence = incident.fence

    # Twilio retries the same request, and the call's later callbacks change nothing
    assert is_bare_hangup(answer(client, call, answered_by))
    report(client, call, "completed")
    call.refresh_from_db()
    incident.refresh_from_db()
    assert (call.status, call.provider_status, incident.fence) == ("failed", "completed", fence)
    nxt = services.incident_run_step(incident_id=incident.pk, fence=fence, dispatch=False)
    assert {o.attempt.to_number for o in nxt.outbound} == {BACKUP}  # the backup is paged without waiting


@pytest.mark.parametrize("answered_by", ["human", "unknown"])
def test_a_person_or_an_undecided_answer_gets_the_prompt(paged, client, answered_by):
    incident, _ = paged
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    response = answer(client, call, answered_by)
    assert response.status_code == 200 and b'numDigits="1"' in response.content
    report(client, call, "in-progress")
    call.refresh_from_db()
    assert (call.status, call.error_code) == ("delivered", "")


def test_machine_on_a_duplicate_try_call_leaves_the_attempt_alone(paged, client):
    """A presumed-dead try's call (``extra_sids``) reached voicemail: the attempt's own call may still reach the
    responder, so only that call is hung up."""
    incident, _ = paged
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    duplicate = "CA" + "d" * 32
    NotificationAttempt.objects.filter(pk=call.pk).update(extra_sids=[duplicate])
    assert is_bare_hangup(answer(client, call, "machine_start", sid=duplicate))
    call.refresh_from_db()
    assert (call.status, call.error_code) == ("sent", "")


@pytest.mark.parametrize("verdict_from", ["this-try", "earlier-try"])
def test_a_machine_verdict_before_the_sid_came_back_fails_only_the_call_it_came_from(
    oncall, patient_interaction, twilio_stub, client, verdict_from
):
    """Twilio's prompt request can beat its answer to the create request, so a verdict that comes while the
    attempt is ``sending`` is held by CallSid. It may come from this try's call (the attempt fails once that SID
    is recorded) or from an earlier try presumed dead whose call went out late and is still live: that call is
    a duplicate (``extra_sids``) and its voicemail must not fail the try that may reach the responder."""
    incident, outcome = raise_and_fire(patient_interaction)
    sms = next(o for o in outcome.outbound if o.attempt.channel == "sms")
    voice = next(o for o in outcome.outbound if o.attempt.channel == "voice")
    services.attempt_deliver(outbound=sms)
    report(client, NotificationAttempt.objects.get(pk=sms.attempt.pk), "undelivered")  # only the call is out

    first = voice.attempt  # try 1: its create request stalls...
    earlier_sid, _ = attempts._send(voice)  # ...and reaches Twilio after all, but its answer is not back yet
    second, paging = attempts._claim(first.pk, first.claimed_at + attempts.stale_after() + timedelta(seconds=1))
    assert paging and (second.status, second.tries) == ("sending", 2)  # try 1 was presumed dead
    sid, provider_status = attempts._send(attempts.outbound_prepare(attempt=second, config=None))
    assert sid != earlier_sid

    machine_sid = sid if verdict_from == "this-try" else earlier_sid
    call = NotificationAttempt.objects.get(pk=first.pk)
    assert is_bare_hangup(answer(client, call, "machine_start", sid=machine_sid))
    call.refresh_from_db()
    assert (call.status, call.provider_sid, call.machine_verdicts) == ("sending", "", {machine_sid: "machine_start"})

    attempts._mark_sent(second, sid=sid, provider_status=provider_status)  # try 2's answer comes back
    call.refresh_from_db()
    incident.refresh_from_db()
    assert call.provider_sid == sid
    if verdict_from == "this-try":
        assert (call.status, call.error_code, call.error_message) == (
            "failed",
            "answering-machine",
            "answered by machine_start",
        )
        assert call.log_interaction.metadata["escalation"]["status"] == "failed"
        assert incident.next_step_at <= timezone.now()  # fell through
        return
    assert (call.status, call.error_code) == ("sent", "")
    assert incident.status == "triggered" and incident.next_step_at > timezone.now()  # the step waits for the call
    attempts._mark_sent(first, sid=earlier_sid, provider_status="queued")  # try 1's answer, late
    assert is_bare_hangup(answer(client, call, "machine_start", sid=earlier_sid))  # Twilio retries its request
    call.refresh_from_db()
    incident.refresh_from_db()
    assert (call.status, call.provider_sid, call.extra_sids) == ("sent", sid, [earlier_sid])
    assert incident.next_step_at > timezone.now()


def test_a_machine_verdict_between_tries_fails_the_call_the_retry_finds(
    oncall, patient_interaction, twilio_stub, client
):
    """Twilio placed the call but answered 500, and the call reached voicemail before the retry: the verdict is
    held while the attempt is ``pending`` and the retry, which finds that call instead of calling again, fails."""
    twilio_stub.add_fault("calls", status=500, create=True)
    incident, outcome = raise_and_fire(patient_interaction)
    for item in outcome.outbound:
        services.attempt_deliver(outbound=item)
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    (placed,) = twilio_stub.created("calls", to=PRIMARY)
    assert (call.status, call.ambiguous) == ("pending", True)
    assert is_bare_hangup(answer(client, call, "machine_start", sid=placed["sid"]))
    services.attempt_send(attempt_id=call.pk, now=call.next_try_at)
    call.refresh_from_db()
    assert len(twilio_stub.creates("calls")) == 1
    assert (call.status, call.provider_sid, call.error_code) == ("failed", placed["sid"], "answering-machine")


def test_a_url_placed_call_is_reconciled_and_still_detects_a_machine(oncall, patient_interaction, twilio_stub, client):
    """Twilio placed the call but answered 500: the retry finds it (``find_recent``) instead of calling again."""
    twilio_stub.add_fault("calls", status=500, create=True)
    incident, outcome = raise_and_fire(patient_interaction)
    for item in outcome.outbound:
        services.attempt_deliver(outbound=item)
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    assert call.status == "pending" and call.ambiguous
    services.attempt_send(attempt_id=call.pk, now=call.next_try_at)
    call.refresh_from_db()
    (placed,) = twilio_stub.created("calls", to=PRIMARY)
    assert len(twilio_stub.creates("calls")) == 1 and (call.status, call.provider_sid) == ("sent", placed["sid"])
    assert (placed["url"], placed["machine_detection"]) == (
        f"https://clinic.example.com/twilio/escalation/call/{call.pk}/",
        "Enable",
    )
    assert is_bare_hangup(answer(client, call, "machine_start"))
    call.refresh_from_db()
    assert call.status == "failed"
