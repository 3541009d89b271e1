"""Proof of possession before a chat visitor becomes an existing customer (services, no websocket)."""

import re

import pytest
from django.core import mail

from channels_app.chat import services, verification
from identity.models import CustomerIdentifier
from identity.services import customer_resolve

pytestmark = pytest.mark.django_db
VISITOR = "w" * 8 + "0123456789abcdef"


def session_for(tenant):
    session, _ = services.chat_hello(tenant=tenant, visitor=VISITOR)
    return session


def test_email_claim_is_proven_by_the_emailed_code(tenant):
    owner = customer_resolve(tenant=tenant, email="ana@example.com", verified_kinds=("email",)).customer
    session = session_for(tenant)
    frames = services.chat_message(session=session, client_id="msg-000001", text="I'm ana@example.com")
    assert "6-digit code" in frames[-1]["text"] and "a…@example.com" in frames[-1]["text"]
    assert session.customer != owner
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
    assert mail.outbox[-1].to == ["ana@example.com"]
    services.chat_message(session=session, client_id="msg-000002", text=code)
    assert session.customer == owner
    assert CustomerIdentifier.objects.get(kind="cookie", value=VISITOR).customer == owner
    # single use: the same code again is just a message, not a second proof
    assert verification.challenge_answer(tenant=tenant, visitor=VISITOR, text=code) is None


def test_a_new_number_needs_no_code_and_attaches_unverified(tenant):
    session = session_for(tenant)
    frames = services.chat_message(session=session, client_id="msg-000001", text="my number is 415 555 2671")
    assert "code" not in frames[-1]["text"]
    ident = CustomerIdentifier.objects.get(kind="phone", value="+14155552671")
    assert ident.customer == session.customer and not ident.verified


def test_codes_per_hour_are_limited(tenant):
    customer_resolve(tenant=tenant, phone="+14155552671")
    session = session_for(tenant)
    replies = [services.chat_message(session=session, client_id=f"msg-00000{i}", text="call me on 415 555 2671")[-1]
               ["text"] for i in range(4)]
    assert all("6-digit code" in r for r in replies[:3]) and "several codes" in replies[3]
