"""A forged From is not the patient: only mail our receiving MTA vouches for (RFC 8601 Authentication-Results,
DMARC / aligned DKIM pass, trusted authserv-id) from a verified address confirms the sender; confirmations go
only to verified addresses."""

from __future__ import annotations

import pytest

from channels_app.email.confirmations import email_confirmation_send
from channels_app.email.ingest import email_ingest
from channels_app.models import InboundEmail, OutboundEmail
from conversations.appointments import appointment_book
from conversations.services import session_open
from identity.models import CustomerIdentifier
from identity.services import customer_resolve
from tests.clock import local, next_weekday
from tests.email.conftest import MTA, PATIENT_EMAIL, authenticated, plain

pytestmark = pytest.mark.django_db


def _ingest(msg):
    return email_ingest(raw=msg.as_bytes(), source=InboundEmail.Source.WEBHOOK)


def test_authenticated_mail_from_the_patients_verified_address_is_confirmed(tenant, mailbox, patient):
    result = _ingest(plain(body="Please cancel my appointment"))
    assert result.status == "accepted" and result.email.identity_confirmed
    assert result.email.interaction.customer_id == patient.pk
    assert result.email.interaction.workflow.get("identity") != "other"


@pytest.mark.parametrize(
    "tamper",
    [
        "no header",  # a forged From straight to the webhook / an MTA that checked nothing
        "untrusted authserv-id",  # someone else's verdict
        "forged header below ours",  # our MTA said fail; the attacker's own "pass" further down is ignored
        "dkim for another domain",  # signed by the attacker's domain, not aligned with From
        "dmarc fail",
    ],
)
def test_forged_sender_is_attached_but_unconfirmed(tenant, mailbox, patient, tamper):
    msg = plain(body="Please cancel my appointment", auth=False)
    if tamper == "untrusted authserv-id":
        authenticated(msg, authserv_id="mx.attacker.test")
    elif tamper == "forged header below ours":
        authenticated(msg)  # the attacker's header, claiming our authserv-id…
        authenticated(msg, result="fail")  # …and our MTA's verdict on top
    elif tamper == "dkim for another domain":
        msg["Authentication-Results"] = f"{MTA}; dkim=pass header.d=attacker.test; dmarc=none header.from=example.com"
    elif tamper == "dmarc fail":
        authenticated(msg, result="fail")
    result = _ingest(msg)
    assert result.status == "accepted" and not result.email.identity_confirmed
    workflow = result.email.interaction.workflow
    assert workflow["identity"] == "other" and workflow["identity_unconfirmed"] == PATIENT_EMAIL


def test_unverified_address_is_not_confirmed_until_authenticated_mail_arrives(tenant, mailbox):
    customer = customer_resolve(tenant=tenant, email=PATIENT_EMAIL, display_name="Jane Doe").customer
    ident = CustomerIdentifier.objects.get(customer=customer, kind="email")
    assert not ident.verified
    assert not _ingest(plain(body="Hi", auth=False)).email.identity_confirmed
    ident.refresh_from_db()
    assert not ident.verified
    assert _ingest(plain(body="Hi again")).email.identity_confirmed
    ident.refresh_from_db()
    assert ident.verified


def test_confirmation_email_goes_only_to_a_verified_address(tenant, mailbox):
    customer = customer_resolve(
        tenant=tenant, phone="+15551230002", email="someone@example.com", verified_kinds=("phone",)
    ).customer
    sms, _ = session_open(tenant=tenant, customer=customer, channel="sms")
    tuesday = next_weekday(tenant, 1)  # a weekday (default hours 09:00-17:00), at least a day ahead
    appointment = appointment_book(
        tenant=tenant,
        customer=customer,
        conversation=sms.conversation,
        booked_via="sms",
        starts_at=local(tenant, tuesday, 10),
    )
    assert email_confirmation_send(appointment, "booked") is False
    assert not OutboundEmail.objects.exists()
    CustomerIdentifier.objects.filter(customer=customer, kind="email").update(verified=True)
    assert email_confirmation_send(appointment, "booked") is True
    assert OutboundEmail.objects.get().channel_message.recipient == "someone@example.com"
