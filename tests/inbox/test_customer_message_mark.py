"""A patient message marks its conversation in the inbox with one UPDATE (issue 19): unread always, waiting
only while staff hold it, a resolved conversation opened again; the row is made on the first message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.inbox.models import ConversationHandling
from conversations.inbox.services import conversation_customer_message
from conversations.models import Conversation
from identity.services import customer_resolve

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(tenant):
    customer = customer_resolve(tenant=tenant, phone="+15551230001").customer
    now = timezone.now()
    return Conversation.objects.create(tenant=tenant, customer=customer, opened_at=now, last_activity_at=now)


def test_first_message_creates_the_row_unread_and_not_waiting(conversation):
    conversation_customer_message(conversation_id=conversation.pk)
    row = ConversationHandling.objects.get(conversation=conversation)
    assert (row.unread, row.status, row.customer_waiting_since) == (True, "open", None)


def test_waiting_starts_only_while_staff_hold_it_and_keeps_its_first_time(conversation):
    earlier = timezone.now() - timedelta(minutes=5)
    ConversationHandling.objects.create(conversation=conversation, tenant_id=conversation.tenant_id, status="resolved")
    conversation_customer_message(conversation_id=conversation.pk, tenant_id=conversation.tenant_id, at=earlier)
    row = ConversationHandling.objects.get(conversation=conversation)
    assert (row.unread, row.status, row.customer_waiting_since) == (True, "open", None)

    ConversationHandling.objects.filter(pk=row.pk).update(needs_human=True, unread=False)
    conversation_customer_message(conversation_id=conversation.pk, at=earlier)
    conversation_customer_message(conversation_id=conversation.pk)  # a later message: still waiting since the first
    row.refresh_from_db()
    assert (row.unread, row.customer_waiting_since) == (True, earlier)
