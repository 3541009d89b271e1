"""Retention: expired session state is deleted by the beat task, live state stays."""

from datetime import timedelta

import pytest
from django.utils import timezone

from conversations import services
from conversations.models import SessionState
from conversations.tasks import purge_expired_state


@pytest.mark.django_db
def test_expired_state_is_deleted(patient_row):
    conversation = patient_row.conversation
    services.state_set(conversation=conversation, key="old", value="x", at=timezone.now() - timedelta(days=400))
    services.state_set(conversation=conversation, key="live", value="y")
    assert purge_expired_state() == 1
    assert list(SessionState.objects.filter(conversation=conversation).values_list("key", flat=True)) == ["live"]


# --- per-tenant retention periods (identity.retention, daily beat task) ------------------------------------------

DAY = timedelta(days=1)


def _session(tenant, phone: str, text: str, *, ended_days_ago: int, channel: str = "sms", metadata=None):
    """A closed session ``ended_days_ago`` with one thing said (in its transcript and as a message body)."""
    from conversations.models import ChannelMessage, Interaction
    from identity.services import customer_resolve

    customer = customer_resolve(tenant=tenant, phone=phone).customer
    ended = timezone.now() - ended_days_ago * DAY
    row, _ = services.session_open(tenant=tenant, customer=customer, channel=channel, at=ended - timedelta(minutes=5))
    services.interaction_append_turn(interaction=row, role="customer", text=text, at=ended - timedelta(minutes=4))
    ChannelMessage.objects.create(
        tenant=tenant,
        interaction=row,
        channel=channel,
        direction="inbound",
        provider_id=f"SM{phone[-6:]}",
        sender=phone,
        recipient="+15550100001",
        body=text,
        status="received",
    )
    Interaction.objects.filter(pk=row.pk).update(ended_at=ended, sentiment=-0.4, metadata=metadata or {})
    row.refresh_from_db()
    return row


@pytest.fixture
def retention_tenant(tenant):
    tenant.retain_transcripts_days = 30
    tenant.retain_recordings_days = 60
    tenant.retain_raw_emails_days = 90
    tenant.save(update_fields=["retain_transcripts_days", "retain_recordings_days", "retain_raw_emails_days"])
    return tenant


@pytest.mark.django_db
def test_daily_purge_removes_old_transcripts_keeps_recent_rows_numbers_and_legal_holds(retention_tenant):
    from conversations.models import ChannelMessage, Interaction
    from identity.models import AuditEvent
    from identity.tasks import retention_purge_all

    old = _session(retention_tenant, "+14155550101", "me duele la rodilla desde marzo 😣", ended_days_ago=45)
    recent = _session(retention_tenant, "+14155550102", "can I move my cleaning to Friday?", ended_days_ago=3)
    held = _session(retention_tenant, "+14155550103", "my lawyer says keep this", ended_days_ago=200)
    held.customer.legal_hold = "Smith v. Clinic, 2026"
    held.customer.save(update_fields=["legal_hold"])

    counts = retention_purge_all()
    assert counts["conversations.transcripts"] == 1 and counts["conversations.message_texts"] == 1
    for row in (old, recent, held):
        row.refresh_from_db()
    assert old.transcript == [] and ChannelMessage.objects.get(interaction=old).body == ""
    assert float(old.sentiment) == -0.4 and old.channel == "sms"  # the row and its numbers stay
    assert "Friday" in recent.transcript[0]["text"] and held.transcript[0]["text"] == "my lawyer says keep this"
    assert Interaction.objects.filter(tenant=retention_tenant).count() == 3

    event = AuditEvent.objects.get(action="retention.purge")
    assert event.actor == "system:retention" and event.tenant_id == retention_tenant.pk
    assert event.details["rows"]["conversations.transcripts"] == 1 and event.details["legal_holds_skipped"] == 1
    assert "rodilla" not in str(event.details) and "+1415" not in str(event.details)

    # a second run (the task ran twice) finds nothing more and writes no second event
    assert not any(retention_purge_all().values())
    assert AuditEvent.objects.filter(action="retention.purge").count() == 1


@pytest.mark.django_db
def test_recording_links_are_removed_after_their_period(retention_tenant):
    from identity.retention import retention_purge

    recording = {
        "sid": "RE0123",
        "url": "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE0123",
        "status": "completed",
        "duration_seconds": 42,
    }
    call = _session(
        retention_tenant,
        "+14155550104",
        "hi it's Dolores",
        ended_days_ago=70,
        channel="voice",
        metadata={"call_sid": "CA1", "recording": recording},
    )
    young = _session(
        retention_tenant,
        "+14155550105",
        "hello",
        ended_days_ago=10,
        channel="voice",
        metadata={
            "call_sid": "CA2",
            "recording": {**recording, "sid": "RE0456", "url": recording["url"][:-6] + "RE0456"},
        },
    )
    assert retention_purge(tenant=retention_tenant)["conversations.recordings"] == 1
    call.refresh_from_db()
    young.refresh_from_db()
    assert call.metadata["recording"]["status"] == "purged" and call.metadata["recording"]["duration_seconds"] == 42
    assert "url" not in call.metadata["recording"] and "RE0123" not in str(call.metadata)
    assert call.metadata["call_sid"] == "CA1" and young.metadata["recording"]["url"].endswith("RE0456")


@pytest.mark.django_db
def test_raw_emails_and_attachment_files_are_removed_after_their_period(
    retention_tenant, django_capture_on_commit_callbacks
):
    import hashlib

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from channels_app.models import EmailAttachment, InboundEmail
    from identity.retention import retention_purge

    def email(days_ago: int, text: str):
        row = _session(retention_tenant, f"+1415555{days_ago:04d}", text, ended_days_ago=days_ago, channel="email")
        raw = default_storage.save(f"email/raw/test-{days_ago}.eml", ContentFile(b"From: a@b\r\n\r\n" + text.encode()))
        inbound = InboundEmail.objects.create(
            tenant=retention_tenant,
            source="webhook",
            status="processed",
            from_address="pat@example.org",
            subject="Re: mi cita",
            text=text,
            raw_path=raw,
            received_at=timezone.now() - days_ago * DAY,
            interaction=row,
        )
        payload = b"%PDF-1.4 lab results for Pat"
        path = default_storage.save(f"email/attachments/test-{days_ago}.pdf", ContentFile(payload))
        EmailAttachment.objects.create(
            email=inbound,
            filename="labs.pdf",
            content_type="application/pdf",
            size=len(payload),
            sha256=hashlib.sha256(payload).hexdigest(),
            storage_path=path,
        )
        return inbound, raw, path

    old, old_raw, old_pdf = email(120, "adjunto mis análisis, gracias")
    new, new_raw, new_pdf = email(20, "see attached, thanks!")
    held, held_raw, held_pdf = email(150, "here are the photos of the fall, for my lawyer")
    held.interaction.customer.legal_hold = "Rivera v. Clinic, 2026"
    held.interaction.customer.save(update_fields=["legal_hold"])
    with django_capture_on_commit_callbacks(execute=True):  # files are deleted once the purge commits
        counts = retention_purge(tenant=retention_tenant)
    assert counts["channels_app.emails"] == 1 and counts["channels_app.attachment_files"] == 1
    old.refresh_from_db()
    assert (old.text, old.subject, old.raw_path) == ("", "", "")
    assert not default_storage.exists(old_raw) and not default_storage.exists(old_pdf)
    attachment = EmailAttachment.objects.get(email=old)
    assert attachment.storage_path == "" and attachment.size > 0  # the row (name, size, hash) stays
    assert default_storage.exists(new_raw) and default_storage.exists(new_pdf)
    assert InboundEmail.objects.get(pk=new.pk).text == "see attached, thanks!"
    held.refresh_from_db()  # a patient under legal hold keeps every email and file, however old
    assert held.text.startswith("here are the photos") and held.raw_path == held_raw
    assert default_storage.exists(held_raw) and default_storage.exists(held_pdf)


@pytest.mark.django_db
def test_no_periods_set_means_nothing_is_purged_and_nothing_audited(tenant):
    from identity.models import AuditEvent
    from identity.retention import retention_purge

    row = _session(tenant, "+14155550106", "please keep my records", ended_days_ago=3000)
    assert not any(retention_purge(tenant=tenant).values())
    row.refresh_from_db()
    assert row.transcript and not AuditEvent.objects.filter(action="retention.purge").exists()


@pytest.mark.django_db
def test_audit_events_are_kept_for_the_tenant_period_then_deleted(tenant):
    from identity.audit import audit_record
    from identity.models import AuditEvent
    from identity.retention import retention_purge

    ancient = AuditEvent.objects.create(  # written seven years ago
        at=timezone.now() - timedelta(days=7 * 365), tenant_id=tenant.pk, actor="nurse-ann", action="customer.view"
    )
    kept = audit_record(request=None, actor="system:test", action="customer.view", tenant_id=tenant.pk)
    assert retention_purge(tenant=tenant)["identity.audit_events"] == 1
    assert not AuditEvent.objects.filter(pk=ancient.pk).exists() and AuditEvent.objects.filter(pk=kept.pk).exists()


def test_purge_runs_daily_from_beat():
    from django.conf import settings

    from identity.tasks import retention_purge_all

    entry = settings.CELERY_BEAT_SCHEDULE["retention-purge"]
    assert entry["task"] == retention_purge_all.name
    assert entry["schedule"].remaining_estimate(timezone.now()) <= DAY


@pytest.mark.django_db
def test_the_audit_cannot_be_set_to_expire_before_six_years(tenant):
    """The tenant form (clinic admins edit it) validates the model: a short audit period is a form error."""
    from django.core.exceptions import ValidationError

    tenant.retain_audit_days = 30
    with pytest.raises(ValidationError) as refused:
        tenant.full_clean()
    assert "retain_audit_days" in refused.value.message_dict
