"""Issue 14's Done-when for erase, in one journey: a patient with a name, phone, email, date of birth, an emailed
attachment and a call recording; after the erase a scan of every table (each row cast to text) finds none of
them, the files are gone, every dashboard's totals are unchanged and the ``customer.erased`` webhook fired."""

import hashlib
from datetime import date, timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from channels_app.models import EmailAttachment, InboundEmail
from conversations import services
from conversations.analytics.dashboards import CHARTS, chart_rows
from conversations.models import Interaction
from conversations.recordings.models import RecordingDeletion
from conversations.webhooks.models import WebhookEndpoint, WebhookMessage
from identity.models import Customer
from identity.privacy import customer_erase
from identity.services import customer_resolve, customer_set_intake
from tests.privacy.test_erase import tables_containing

pytestmark = pytest.mark.django_db
SECRETS = ("Philippa Oyelaran-Brandt", "Oyelaran", "4155550142", "pip.oyelaran@example.net", "1979-11-02", "11/02/1979")


def dashboards(tenant):
    end = timezone.now() + timedelta(days=1)
    return {
        chart: chart_rows(chart, tenant=tenant, start=end - timedelta(days=30), end=end, bucket="day")
        for chart in CHARTS
    }


def test_erase_leaves_no_trace_keeps_dashboards_and_fires_the_webhook(tenant, django_capture_on_commit_callbacks):
    WebhookEndpoint.objects.create(tenant=tenant, url="https://hooks.example.com/erased", events=["customer.erased"])
    customer = customer_resolve(tenant=tenant, phone="(415) 555-0142", email="Pip.Oyelaran@example.net").customer
    customer_set_intake(customer=customer, name="Philippa Oyelaran-Brandt", date_of_birth=date(1979, 11, 2))
    sms, _ = services.session_open(tenant=tenant, customer=customer, channel="sms")
    services.interaction_append_turn(
        interaction=sms, role="customer", text="hi it's Philippa Oyelaran-Brandt, DOB 11/02/1979, my back hurts"
    )
    call, _ = services.session_open(tenant=tenant, customer=customer, channel="voice")
    recording = "RE" + "7" * 32
    Interaction.objects.filter(pk=call.pk).update(
        metadata={"call_sid": "CA" + "2" * 32, "from": "+14155550142", "recording": {"sid": recording}}
    )
    Interaction.objects.filter(pk__in=[sms.pk, call.pk]).update(sentiment=-0.3, lead_score=55, escalated=True)
    email, _ = services.session_open(tenant=tenant, customer=customer, channel="email")
    payload = b"%PDF-1.4 MRI report, Philippa Oyelaran-Brandt, born 1979-11-02"
    pdf = default_storage.save("email/attachments/mri.pdf", ContentFile(payload))
    raw = default_storage.save("email/raw/mri.eml", ContentFile(b"From: pip.oyelaran@example.net\r\n\r\nMRI attached"))
    inbound = InboundEmail.objects.create(
        tenant=tenant,
        source="webhook",
        status="processed",
        from_address="pip.oyelaran@example.net",
        from_name="Philippa Oyelaran-Brandt",
        subject="MRI report",
        text="MRI attached",
        raw_path=raw,
        received_at=timezone.now(),
        interaction=email,
    )
    EmailAttachment.objects.create(
        email=inbound,
        filename="mri.pdf",
        content_type="application/pdf",
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        storage_path=pdf,
    )
    before = dashboards(tenant)
    # the scan finds each first (the date of birth column is encrypted at rest: the ISO date is in no row)
    assert {needle for _, needle in tables_containing(SECRETS)} == set(SECRETS) - {"1979-11-02"}

    with django_capture_on_commit_callbacks(execute=True):
        customer_erase(customer=customer, actor="dpo")

    assert tables_containing(SECRETS) == []
    assert Customer.objects.get(pk=customer.pk).date_of_birth is None  # stored encrypted: checked by value too
    assert not default_storage.exists(pdf) and not default_storage.exists(raw)
    assert dashboards(tenant) == before
    message = WebhookMessage.objects.get(event_type="customer.erased")
    assert message.payload["data"] == {"customer": {"id": str(customer.pk)}}
    assert RecordingDeletion.objects.filter(recording_sid=recording, tenant=tenant).exists()
