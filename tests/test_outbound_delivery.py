"""Outbound SMS / callback delivery: claim → send → record without a lock across the HTTP call; an uncertain
attempt is reconciled against Twilio (the local stub of its API) instead of re-sent; a lost task is re-driven."""

import threading
import time
from datetime import timedelta
from email.utils import formatdate

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from channels_app import tasks as channel_tasks
from channels_app.delivery import (
    delivery_claim,
    delivery_record_failed,
    delivery_record_sent,
    delivery_release,
    outbound_redrive,
)
from channels_app.email.tasks import email_deliver_task
from channels_app.models import OutboundDelivery
from channels_app.sms.services import sms_deliver, sms_send
from channels_app.voice.callback import callback_place
from channels_app.voice.tasks import voice_place_callback, voicemail_file_untranscribed_task, voicemail_transcribe
from conversations.agent.services import callback_request
from conversations.models import CallbackRequest, ChannelMessage
from conversations.services import call_open, message_mark_sent, message_prepare_outbound, session_open
from identity.services import customer_resolve
from providers import ProviderTransientError
from providers.sms import TwilioSmsBackend
from tests import processes
from tests.stubs.twilio_api import TwilioStub

PATIENT = "+15551230077"
CLINIC = "+15550100001"
SMS_TWILIO = "providers.sms.TwilioSmsBackend"
VOICE_TWILIO = "providers.voice.TwilioVoiceBackend"


def outbound_sms(tenant, key="conf-1", body="Your visit is confirmed.", to=PATIENT):
    customer = customer_resolve(tenant=tenant, phone=to).customer
    return sms_send(tenant=tenant, customer=customer, to=to, body=body, idempotency_key=key)


def pending_sms_without_task(tenant, *, key, to):
    """An outbound row whose delivery task was lost (never reached the broker)."""
    customer = customer_resolve(tenant=tenant, phone=to).customer
    interaction, _ = session_open(tenant=tenant, customer=customer, channel="sms", direction="outbound")
    return message_prepare_outbound(
        interaction=interaction, sender=CLINIC, recipient=to, body="See you soon.", idempotency_key=key
    )[0]


@pytest.mark.django_db
def test_sms_500_after_twilio_created_it_is_reconciled_not_sent_twice(tenant):
    message = outbound_sms(tenant)
    with TwilioStub() as stub, override_settings(SMS_BACKEND=SMS_TWILIO, TWILIO_API_BASE=stub.base_url):
        stub.add_fault("messages", status=500, create=True)  # Twilio created the message, then answered 500
        with pytest.raises(ProviderTransientError):
            sms_deliver(message_id=message.pk)
        message.refresh_from_db()
        assert message.status == "pending" and message.delivery.in_flight
        sms_deliver(message_id=message.pk)  # the task's autoretry
        assert len(stub.created("messages")) == 1 and len(stub.creates("messages")) == 1
        message.refresh_from_db()
        assert message.provider_id == stub.created("messages")[0]["sid"] and message.status == "queued"
        assert (message.delivery.attempts, message.delivery.in_flight) == (2, False)


@pytest.mark.django_db
def test_sms_500_before_twilio_created_it_is_sent_on_retry(tenant):
    message = outbound_sms(tenant)
    with TwilioStub() as stub, override_settings(SMS_BACKEND=SMS_TWILIO, TWILIO_API_BASE=stub.base_url):
        stub.add_fault("messages", status=500)  # nothing created
        with pytest.raises(ProviderTransientError):
            sms_deliver(message_id=message.pk)
        sms_deliver(message_id=message.pk)
        assert len(stub.created("messages")) == 1 and len(stub.creates("messages")) == 2
        message.refresh_from_db()
        assert message.provider_id == stub.created("messages")[0]["sid"]


@pytest.mark.django_db
def test_reconcile_never_adopts_an_older_identical_sms_we_already_own(tenant):
    """The same text to the same number an hour ago (a message we recorded) is not this message's SID."""
    with TwilioStub() as stub, override_settings(SMS_BACKEND=SMS_TWILIO, TWILIO_API_BASE=stub.base_url):
        earlier = outbound_sms(tenant, key="conf-0")
        sms_deliver(message_id=earlier.pk)
        message = outbound_sms(tenant, key="conf-1")
        stub.add_fault("messages", status=500)  # the request may have been processed: no, nothing created
        with pytest.raises(ProviderTransientError):
            sms_deliver(message_id=message.pk)
        sms_deliver(message_id=message.pk)
        message.refresh_from_db()
        earlier.refresh_from_db()
        assert len(stub.created("messages")) == 2
        assert message.provider_id and message.provider_id != earlier.provider_id


@pytest.mark.django_db
def test_a_send_in_progress_elsewhere_is_not_sent_again(tenant):
    message = outbound_sms(tenant)
    claim = delivery_claim(message_id=message.pk)  # another worker is mid-request
    assert claim.reconcile_since is None
    assert sms_deliver(message_id=message.pk).status == "pending"
    with TwilioStub() as stub, override_settings(SMS_BACKEND=SMS_TWILIO, TWILIO_API_BASE=stub.base_url):
        sms_deliver(message_id=message.pk)
        assert stub.creates("messages") == []


@pytest.mark.django_db
def test_a_superseded_attempt_failing_late_leaves_the_live_claim_alone(tenant):
    """An attempt that outlived its lease and then fails before reaching Twilio (request_sent=False) must not
    clear the newer attempt's claim: a third worker would then send the same SMS again."""
    message = outbound_sms(tenant)
    stale = delivery_claim(message_id=message.pk, now=timezone.now() - timedelta(minutes=3))  # lease long gone
    live = delivery_claim(message_id=message.pk)  # another worker took over and is mid-request
    assert (stale.attempt, live.attempt) == (1, 2)
    live_lease = OutboundDelivery.objects.get(message=message).lease_until
    assert delivery_release(claim=stale, request_sent=False) is False
    delivery = OutboundDelivery.objects.get(message=message)
    assert (delivery.attempts, delivery.in_flight, delivery.lease_until) == (2, True, live_lease)
    with TwilioStub() as stub, override_settings(SMS_BACKEND=SMS_TWILIO, TWILIO_API_BASE=stub.base_url):
        assert sms_deliver(message_id=message.pk).status == "pending"  # a third attempt stays off
        assert stub.creates("messages") == []
    assert delivery_release(claim=live, request_sent=False) is True  # the live attempt's own release works
    delivery.refresh_from_db()
    assert not delivery.in_flight


@pytest.mark.django_db
def test_callback_retry_skips_a_call_we_own_and_yesterdays_call(tenant):
    """R7: find_recent is bounded in time and never latches onto a SID we already recorded."""
    # verified: only a proven phone of the customer is ever called back (channels_app.voice.callback)
    customer = customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer
    with TwilioStub() as stub, override_settings(VOICE_BACKEND=VOICE_TWILIO, TWILIO_API_BASE=stub.base_url):
        from providers.voice import TwilioVoiceBackend

        yesterday = TwilioVoiceBackend().place_call(tenant=tenant, from_=CLINIC, to=PATIENT, twiml="<Response/>")
        stub.calls[yesterday.sid]["date_created"] = formatdate(time.time() - 86400, usegmt=True)
        owned = TwilioVoiceBackend().place_call(tenant=tenant, from_=CLINIC, to=PATIENT, twiml="<Response/>")
        earlier = call_open(
            tenant=tenant,
            customer=customer,
            sender=CLINIC,
            recipient=PATIENT,
            status="pending",
            idempotency_key="callback:earlier",
            direction="outbound",
        ).message
        message_mark_sent(message=earlier, provider_id=owned.sid, status="queued")

        chat, _ = session_open(tenant=tenant, customer=customer, channel="chat")
        request, _ = callback_request(interaction=chat, phone=PATIENT, reason="call me")
        stub.add_fault("calls", status=500)  # uncertain, but Twilio placed nothing
        with pytest.raises(ProviderTransientError):
            callback_place(callback_request_id=request.pk)
        call = callback_place(callback_request_id=request.pk)
        assert len(stub.created("calls")) == 3  # yesterday's, the owned one, and this request's real call
        assert call.provider_id not in (yesterday.sid, owned.sid) and call.status == "queued"
        request.refresh_from_db()
        assert request.status == "in_progress"


def test_sending_tasks_are_requeued_when_their_worker_dies():
    for task in (
        channel_tasks.sms_reply,
        channel_tasks.sms_deliver_task,
        email_deliver_task,
        voice_place_callback,
        voicemail_transcribe,
        voicemail_file_untranscribed_task,
    ):
        assert task.acks_late and task.reject_on_worker_lost, task.name


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_redrive_recovers_messages_whose_task_was_lost(tenant, tmp_path):
    """R3: a task lost before it ran, and one whose worker died mid-request after Twilio created the message:
    the beat sweeper re-queues both; a real worker sends the first once and adopts the second's SID."""
    with TwilioStub() as stub, override_settings(SMS_BACKEND=SMS_TWILIO, TWILIO_API_BASE=stub.base_url):
        lost = pending_sms_without_task(tenant, key="lost", to="+15551230078")
        died = pending_sms_without_task(tenant, key="died", to="+15551230079")
        fresh = outbound_sms(tenant, key="fresh", to="+15551230080")  # its task is queued normally
        ChannelMessage.objects.filter(pk__in=[lost.pk, died.pk]).update(
            created_at=timezone.now() - timedelta(minutes=2)
        )
        # The dead worker: claimed three minutes ago, its request reached Twilio, it never recorded the SID.
        delivery_claim(message_id=died.pk, now=timezone.now() - timedelta(minutes=3))
        created = TwilioSmsBackend().send(tenant=tenant, from_=CLINIC, to=died.recipient, body=died.body)

        assert outbound_redrive() == {"sms": 2, "voice": 0, "email": 0}  # not `fresh`: its task may still run
        worker = processes.start_worker(
            log_path=tmp_path / "worker.log", SMS_BACKEND=SMS_TWILIO, TWILIO_API_BASE=stub.base_url
        )
        try:
            deadline = time.monotonic() + 60
            while (
                ChannelMessage.objects.filter(pk__in=[lost.pk, died.pk, fresh.pk], provider_id="").exists()
                and time.monotonic() < deadline
            ):
                time.sleep(0.1)
        finally:
            processes.stop(worker)
        log = (tmp_path / "worker.log").read_text()
        lost.refresh_from_db()
        died.refresh_from_db()
        assert died.provider_id == created.sid, log
        assert len(stub.created("messages", to=died.recipient)) == 1
        assert [m["sid"] for m in stub.created("messages", to=lost.recipient)] == [lost.provider_id], log
        assert len(stub.created("messages", to=fresh.recipient)) == 1


@pytest.mark.django_db
def test_permanent_error_keeps_only_the_code_no_number_in_logs_or_row(tenant, caplog):
    """S12: Twilio's error text embeds the number ("The 'To' number +1… is not valid"); we keep only the code."""
    message = outbound_sms(tenant)
    with TwilioStub() as stub, override_settings(SMS_BACKEND=SMS_TWILIO, TWILIO_API_BASE=stub.base_url):
        stub.add_fault("messages", status=400, code=21211, to=PATIENT)
        with caplog.at_level("DEBUG", logger="channels_app"):
            sms_deliver(message_id=message.pk)
    message.refresh_from_db()
    assert (message.status, message.error_code, message.error_message) == ("failed", "21211", "provider error 21211")
    assert "21211" in caplog.text and PATIENT not in caplog.text and "not a valid" not in caplog.text


@pytest.mark.django_db
def test_a_superseded_attempt_cannot_mark_failed_what_the_live_attempt_sends(tenant):
    """A permanent error reported by an attempt that outlived its lease is not recorded once a newer attempt
    has claimed the row: the live attempt's outcome decides. Without a newer claim it is recorded as usual."""
    message = outbound_sms(tenant)
    stale = delivery_claim(message_id=message.pk, now=timezone.now() - timedelta(minutes=3))  # lease long gone
    live = delivery_claim(message_id=message.pk)  # another worker took over and is mid-request
    assert delivery_record_failed(claim=stale, error_code="21211") is False
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("pending", "")
    delivery = OutboundDelivery.objects.get(message=message)
    assert (delivery.attempts, delivery.in_flight) == (2, True)  # the live claim is untouched
    assert delivery_record_sent(message=live.message, provider_id="SM" + "1" * 32, status="queued") is True
    message.refresh_from_db()
    assert message.status == "queued"
    assert delivery_record_failed(claim=live, error_code="21211") is False  # sent already: never "failed"

    other = outbound_sms(tenant, key="conf-2", to="+15551230081")
    only = delivery_claim(message_id=other.pk, now=timezone.now() - timedelta(minutes=3))  # expired, not superseded
    assert delivery_record_failed(claim=only, error_code="21211") is True
    other.refresh_from_db()
    assert (other.status, other.error_code, other.delivery.in_flight) == ("failed", "21211", False)


WAIT = 30  # seconds: an upper bound for a thread or request to get somewhere, never a pause


class GatedStub(TwilioStub):
    """The Twilio stub, holding the first two create requests of ``resource`` (in arrival order) until the
    test opens their gates: ``arrived[i]`` is set when request ``i`` is in, ``gates[i].set()`` lets it go on."""

    def __init__(self, resource: str):
        super().__init__()
        self.resource, self.count = resource, 0
        self.arrived = [threading.Event(), threading.Event()]
        self.gates = [threading.Event(), threading.Event()]

    def _take_fault(self, resource, to, action="create"):
        if resource == self.resource and action == "create":
            with self._lock:
                index, self.count = self.count, self.count + 1
            if index < len(self.gates):
                self.arrived[index].set()
                self.gates[index].wait(WAIT)
        return super()._take_fault(resource, to, action)


def in_thread(func, **kwargs) -> tuple[threading.Thread, dict]:
    """Run ``func(**kwargs)`` in a thread with its own database connection; the dict gets "result"/"error"."""
    out: dict = {}

    def run():
        try:
            out["result"] = func(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            out["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _sms_case(tenant):
    message = pending_sms_without_task(tenant, key="gated", to=PATIENT)
    return message, lambda: in_thread(sms_deliver, message_id=message.pk), None


def _callback_case(tenant):
    customer = customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer
    chat, _ = session_open(tenant=tenant, customer=customer, channel="chat")
    request, _ = callback_request(interaction=chat, phone=PATIENT, reason="call me")
    start = lambda: in_thread(callback_place, callback_request_id=request.pk)  # noqa: E731
    return None, start, request


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("resource", ["messages", "calls"])
def test_a_stale_attempts_permanent_error_does_not_fail_a_message_the_live_attempt_sends(tenant, resource):
    """sms_deliver / callback_place end to end: attempt 1 is held at Twilio past its lease, attempt 2 claims
    and is held too; attempt 1 then gets a permanent 400 — nothing is recorded (no ``failed`` row, no closed
    call, no failed callback request); attempt 2's success is."""
    message, start, request = (_sms_case if resource == "messages" else _callback_case)(tenant)
    backend = {"SMS_BACKEND": SMS_TWILIO} if resource == "messages" else {"VOICE_BACKEND": VOICE_TWILIO}
    with (
        GatedStub(resource) as stub,
        override_settings(TWILIO_API_BASE=stub.base_url, TWILIO_TIMEOUT_SECONDS=WAIT * 2, **backend),
    ):
        stub.add_fault(resource, status=400, code=21211)  # taken by the first create only
        first, first_out = start()
        assert stub.arrived[0].wait(WAIT), first_out
        message = message or ChannelMessage.objects.get(idempotency_key=f"callback:{request.pk}")
        OutboundDelivery.objects.filter(message=message).update(lease_until=timezone.now() - timedelta(seconds=1))
        second, second_out = start()  # the retry / redrive: claims attempt 2, finds nothing at Twilio, sends
        assert stub.arrived[1].wait(WAIT), second_out
        stub.gates[0].set()  # attempt 1: 400, long after its lease
        first.join(WAIT)
        assert not first.is_alive() and "error" not in first_out, first_out
        message.refresh_from_db()
        assert (message.status, message.error_code) == ("pending", "")
        assert OutboundDelivery.objects.get(message=message).attempts == 2
        stub.gates[1].set()
        second.join(WAIT)
        assert not second.is_alive() and "error" not in second_out, second_out
    message.refresh_from_db()
    [created] = stub.created(resource)
    assert (message.status, message.provider_id) == ("queued", created["sid"])
    if request is not None:
        request.refresh_from_db()
        assert request.status == CallbackRequest.Status.IN_PROGRESS
        message.interaction.refresh_from_db()
        assert message.interaction.ended_at is None and message.interaction.metadata["call_status"] == "queued"


@pytest.mark.django_db
def test_a_callback_refused_permanently_fails_the_call_and_the_request(tenant):
    customer = customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer
    chat, _ = session_open(tenant=tenant, customer=customer, channel="chat")
    request, _ = callback_request(interaction=chat, phone=PATIENT, reason="call me")
    with TwilioStub() as stub, override_settings(VOICE_BACKEND=VOICE_TWILIO, TWILIO_API_BASE=stub.base_url):
        stub.add_fault("calls", status=400, code=21211)
        call = callback_place(callback_request_id=request.pk)
    assert (call.status, call.error_code) == ("failed", "21211")
    request.refresh_from_db()
    call.interaction.refresh_from_db()
    assert request.status == CallbackRequest.Status.FAILED
    assert call.interaction.ended_at and call.interaction.metadata["call_status"] == "failed"
