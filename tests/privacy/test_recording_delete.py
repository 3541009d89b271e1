"""Recordings are deleted at Twilio after an erase or a retention purge, not only unlinked here.

Twilio is replaced only at its HTTP boundary (tests.stubs.twilio_api): the twilio library sends the real
``DELETE /2010-04-01/Accounts/{AccountSid}/Recordings/{Sid}.json`` with the tenant's credentials.
"""

import base64
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from channels_app.voice.recordings import recording_delete_run, recording_deletions_redrive
from channels_app.voice.tasks import recording_delete
from conversations import services
from conversations.models import Interaction
from conversations.recordings.models import RecordingDeletion
from identity.privacy import customer_erase
from identity.retention import retention_purge
from identity.services import customer_resolve
from providers import ProviderPermanentError, ProviderTransientError
from tests.broker import take_queued
from tests.stubs.twilio_api import TwilioStub

pytestmark = pytest.mark.django_db
VOICE_TWILIO = "providers.voice.TwilioVoiceBackend"


@pytest.fixture
def stub(tenant):
    with TwilioStub() as stub, override_settings(VOICE_BACKEND=VOICE_TWILIO, TWILIO_API_BASE=stub.base_url):
        yield stub


def recorded_call(tenant, stub, *, phone="+14155550177", days_ago=0):
    """A call with a recording that exists at the (stub) Twilio account of ``tenant``, and the voicemail row
    filed from it; returns (call row, recording SID)."""
    sid = stub.add_recording(tenant.twilio_account_sid)
    url = f"https://api.twilio.com/2010-04-01/Accounts/{tenant.twilio_account_sid}/Recordings/{sid}"
    customer = customer_resolve(tenant=tenant, phone=phone).customer
    call, _ = services.session_open(tenant=tenant, customer=customer, channel="voice")
    voicemail, _ = services.session_open(tenant=tenant, customer=customer, channel="voicemail")
    started = timezone.now() - timedelta(days=days_ago)
    Interaction.objects.filter(pk=call.pk).update(
        started_at=started,
        ended_at=started,
        metadata={"call_sid": "CA" + "1" * 32, "recording": {"sid": sid, "url": url, "status": "completed"}},
    )
    Interaction.objects.filter(pk=voicemail.pk).update(
        started_at=started, ended_at=started, metadata={"recording_sid": sid, "recording_url": url}
    )
    return call, sid


def test_erase_deletes_the_recording_at_twilio_with_the_tenant_credentials(
    tenant, stub, empty_queue, django_capture_on_commit_callbacks
):
    call, sid = recorded_call(tenant, stub)
    with django_capture_on_commit_callbacks(execute=True):
        counts = customer_erase(customer=call.customer, actor="test")
    assert counts["conversations.recordings"] >= 1
    (deletion,) = RecordingDeletion.objects.all()  # the call and its voicemail name one recording: one row
    assert (deletion.recording_sid, deletion.reason, deletion.deleted_at) == (sid, "erase", None)
    assert take_queued() == [("channels_app.voice.tasks.recording_delete", [deletion.pk])]

    assert recording_delete_run(deletion_id=deletion.pk) is True
    (request,) = stub.deletes(sid=sid)
    assert request.account_sid == tenant.twilio_account_sid
    expected = base64.b64encode(f"{tenant.twilio_account_sid}:{tenant.twilio_auth_token}".encode()).decode()
    assert request.params["_auth"] == f"Basic {expected}"
    assert sid not in stub.recordings
    deletion.refresh_from_db()
    assert deletion.deleted_at is not None and deletion.attempts == 1

    recording_delete_run(deletion_id=deletion.pk)  # the task ran twice: nothing more is asked of Twilio
    assert len(stub.deletes()) == 1


def test_a_recording_already_gone_at_twilio_404_counts_as_deleted(tenant, stub):
    call, sid = recorded_call(tenant, stub)
    customer_erase(customer=call.customer, actor="test")
    stub.recordings.clear()  # deleted by hand in Twilio's console, or by an earlier run whose answer was lost
    deletion = RecordingDeletion.objects.get()
    assert recording_delete_run(deletion_id=deletion.pk) is True
    assert len(stub.deletes(sid=sid)) == 1
    deletion.refresh_from_db()
    assert deletion.deleted_at is not None


def test_twilio_5xx_is_retried_by_the_task_then_succeeds(tenant, stub):
    call, sid = recorded_call(tenant, stub)
    customer_erase(customer=call.customer, actor="test")
    deletion = RecordingDeletion.objects.get()
    stub.add_fault("recordings", action="delete", status=503)
    with pytest.raises(ProviderTransientError):
        recording_delete_run(deletion_id=deletion.pk)
    assert ProviderTransientError in recording_delete.autoretry_for and recording_delete.max_retries >= 3
    deletion.refresh_from_db()
    assert deletion.deleted_at is None and deletion.attempts == 1 and deletion.last_error.startswith("503")

    assert recording_delete_run(deletion_id=deletion.pk) is True  # the retry
    assert len(stub.deletes(sid=sid)) == 2 and sid not in stub.recordings


def test_wrong_credentials_stay_pending_and_the_sweep_queues_them_again(tenant, stub, empty_queue):
    call, sid = recorded_call(tenant, stub)
    customer_erase(customer=call.customer, actor="test")
    deletion = RecordingDeletion.objects.get()
    stub.add_fault("recordings", action="delete", status=401, code=20003)
    with pytest.raises(ProviderPermanentError):
        recording_delete_run(deletion_id=deletion.pk)
    assert sid in stub.recordings
    assert recording_deletions_redrive() == 0  # just tried
    assert recording_deletions_redrive(now=timezone.now() + timedelta(hours=1)) == 1
    assert take_queued() == [("channels_app.voice.tasks.recording_delete", [deletion.pk])]
    assert recording_delete_run(deletion_id=deletion.pk) is True
    assert recording_deletions_redrive(now=timezone.now() + timedelta(hours=1)) == 0


def test_retention_purge_deletes_old_recordings_at_twilio_and_keeps_young_ones(tenant, stub):
    tenant.retain_recordings_days = 60
    tenant.save(update_fields=["retain_recordings_days"])
    _, old_sid = recorded_call(tenant, stub, phone="+14155550178", days_ago=70)
    _, young_sid = recorded_call(tenant, stub, phone="+14155550179", days_ago=5)
    retention_purge(tenant=tenant)
    retention_purge(tenant=tenant)  # the beat task ran twice
    (deletion,) = RecordingDeletion.objects.all()
    assert (deletion.recording_sid, deletion.reason) == (old_sid, "retention")
    recording_delete_run(deletion_id=deletion.pk)
    assert old_sid not in stub.recordings and young_sid in stub.recordings


def test_another_tenant_recording_is_never_deleted_with_this_tenant_account(tenant, other_tenant, stub):
    theirs = stub.add_recording(other_tenant.twilio_account_sid)
    call, _ = recorded_call(tenant, stub)
    Interaction.objects.filter(pk=call.pk).update(metadata={"recording": {"sid": theirs}})
    customer_erase(customer=call.customer, actor="test")
    for deletion in RecordingDeletion.objects.filter(recording_sid=theirs):
        recording_delete_run(deletion_id=deletion.pk)  # asked on this tenant's account: Twilio answers 404
    assert theirs in stub.recordings


def test_the_sweep_runs_from_beat():
    from django.conf import settings

    from channels_app.voice.tasks import recording_deletions_redrive_task

    entry = settings.CELERY_BEAT_SCHEDULE["recording-deletions-redrive"]
    assert entry["task"] == recording_deletions_redrive_task.name


def test_a_clinic_without_twilio_credentials_is_noted_not_sent(tenant, stub):
    call, sid = recorded_call(tenant, stub)
    customer_erase(customer=call.customer, actor="test")
    type(tenant).objects.filter(pk=tenant.pk).update(twilio_auth_token="")
    deletion = RecordingDeletion.objects.get()
    with pytest.raises(ProviderPermanentError):
        recording_delete_run(deletion_id=deletion.pk)
    deletion.refresh_from_db()
    assert deletion.last_error == "no_credentials" and deletion.deleted_at is None and stub.deletes() == []
