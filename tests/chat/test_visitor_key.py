"""The chat visitor id is a bearer credential: only its keyed hash is stored, and the hash opens nothing."""

import hashlib
import json
import re

import pytest
from django.core.cache import cache
from django.test import override_settings

from channels_app.chat import services
from channels_app.chat.links import chat_link_token
from channels_app.chat.visitors import visitor_key
from conversations.models import ChannelMessage, Interaction
from identity.models import CustomerIdentifier
from identity.services import customer_resolve

pytestmark = pytest.mark.django_db
VISITOR = "k" * 8 + "0123456789abcdef"
PATIENT = "+14155552671"


def test_visitor_key_is_a_keyed_sha256_hmac():
    key = visitor_key(VISITOR)
    assert re.fullmatch(r"[0-9a-f]{32}", key) and key == visitor_key(VISITOR)
    assert key != visitor_key(VISITOR[:-1] + "g")
    assert key not in (hashlib.sha256(VISITOR.encode()).hexdigest()[:32], VISITOR)  # not a plain hash
    with override_settings(SECRET_KEY="another-secret-key-for-this-test-only-0123456789"):
        assert visitor_key(VISITOR) != key  # keyed by SECRET_KEY


def test_the_raw_visitor_id_is_stored_nowhere_and_the_stored_key_identifies_nobody(tenant):
    customer = customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer
    token = chat_link_token(customer=customer)
    session, _ = services.chat_hello(tenant=tenant, visitor=VISITOR, link=token)
    services.chat_message(session=session, client_id="msg-000001", text="hello there")
    services.chat_message(session=session, client_id="msg-000002", text="my email is ana@example.com")
    key = visitor_key(VISITOR)

    chat = Interaction.objects.get(channel="chat")
    assert chat.metadata["visitor_key"] == key and "visitor" not in chat.metadata
    assert CustomerIdentifier.objects.get(kind="cookie").value == key
    message = ChannelMessage.objects.get(channel="chat", direction="inbound", body="hello there")
    assert (message.provider_id, message.sender) == (f"chat:{key}:msg-000001", f"visitor:{key}")
    assert cache.get("chat-link-used:" + hashlib.sha256(token.encode()).hexdigest()) == key
    assert cache.get(f"chat-verify:{tenant.pk}:{key}") is not None  # the email code pending for this visitor
    stored = [json.dumps([i.metadata, i.transcript]) for i in Interaction.objects.all()]
    stored += [
        json.dumps([m.provider_id, m.sender, m.recipient, m.idempotency_key, m.body])
        for m in ChannelMessage.objects.all()
    ]
    stored += list(CustomerIdentifier.objects.values_list("value", flat=True))
    assert stored and not [s for s in stored if VISITOR in s]

    # the browser itself comes back by its id …
    again, frames = services.chat_hello(tenant=tenant, visitor=VISITOR)
    assert frames[0]["identified"] is True and again.customer == customer
    # … but someone who read the stored key (API, webhook, export, admin) cannot use it as an id
    thief, frames = services.chat_hello(tenant=tenant, visitor=key)
    assert frames[0]["identified"] is False and thief.customer is None
