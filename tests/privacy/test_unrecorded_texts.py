"""A patient's texts not yet recorded (in flight or quarantined: channels_app.models.InboundSms) are part of their
DSAR: exported, and erased with the rest — never left behind to be recorded after the erasure."""

import io
import json
import zipfile

import pytest
from django.utils import timezone

from channels_app.models import InboundSms
from identity.privacy import customer_erase, customer_export
from identity.services import customer_resolve

pytestmark = pytest.mark.django_db

PHONE = "+15551230042"


def text(tenant, body: str, sid: str, status: str = "quarantined") -> InboundSms:
    return InboundSms.objects.create(
        tenant=tenant,
        message_sid=sid,
        params={"From": PHONE, "To": "+15550100001", "Body": body, "MessageSid": sid},
        status=status,
        received_at=timezone.now(),
    )


def test_export_holds_them_and_erase_deletes_them_for_this_clinic_only(tenant, other_tenant):
    customer = customer_resolve(tenant=tenant, phone=PHONE).customer
    mine = text(tenant, "my ankle is still sore, can someone call me back", "SM" + "1" * 32)
    text(tenant, "also can i get a note for work", "SM" + "2" * 32, status="pending")
    theirs = text(other_tenant, "other clinic, same number", "SM" + "3" * 32)

    archive = zipfile.ZipFile(io.BytesIO(customer_export(customer=customer)))
    data = json.loads(archive.read("patient.json"))
    bodies = sorted(t["body"] for t in data["channels_app"]["unrecorded_texts"])
    assert bodies == ["also can i get a note for work", "my ankle is still sore, can someone call me back"]

    counts = customer_erase(customer=customer)

    assert counts["channels_app.unrecorded_texts"] == 2
    assert not InboundSms.objects.filter(pk=mine.pk).exists()
    assert list(InboundSms.objects.values_list("pk", flat=True)) == [theirs.pk]


def test_retention_deletes_old_quarantined_texts_but_not_a_held_patients(tenant):
    from datetime import timedelta

    from identity.tasks import retention_purge_all

    tenant.retain_transcripts_days = 30
    tenant.save(update_fields=["retain_transcripts_days"])
    old = text(tenant, "me duele la muela desde el lunes", "SM" + "4" * 32)
    recent = text(tenant, "can u call me back about my bill", "SM" + "5" * 32)
    InboundSms.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=45))

    held = customer_resolve(tenant=tenant, phone="+15551230043").customer
    held.legal_hold = "records request, 2026"
    held.save(update_fields=["legal_hold"])
    kept = InboundSms.objects.create(
        tenant=tenant,
        message_sid="SM" + "6" * 32,
        params={"From": "+15551230043", "Body": "keep this one"},
        status="quarantined",
        received_at=timezone.now() - timedelta(days=45),
    )

    counts = retention_purge_all()

    assert counts["channels_app.unrecorded_texts"] == 1
    assert set(InboundSms.objects.values_list("pk", flat=True)) == {recent.pk, kept.pk}
