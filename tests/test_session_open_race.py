"""Issue 19: ``session_open`` reads and locks the open conversation in one ``SELECT … WHERE status = 'open' FOR
UPDATE`` (it used to read it, then lock it and read its status again). This checks, on two real connections,
what that relies on: a text that waits for the lock while the quiet-period sweeper closes the conversation is
not put in the closed one; PostgreSQL re-checks ``status`` on the row it waited for and the text opens a new
conversation."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from conversations.models import Conversation
from conversations.services import session_open
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 10  # seconds, only ever reached when the test fails


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:  # pg_locks is live (pg_stat_activity is a snapshot per transaction)
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0] > 0


def test_a_text_waiting_on_the_sweepers_lock_opens_a_new_conversation_not_the_closed_one(tenant):
    marta = CustomerFactory(tenant=tenant, display_name="Marta O’Neill")
    earlier, _ = session_open(tenant=tenant, customer=marta, channel="sms", at=timezone.now() - timedelta(days=2))
    out: dict = {}

    def text_arrives():
        try:
            out["result"] = session_open(tenant=tenant, customer=marta, channel="sms")
        except BaseException as exc:  # noqa: BLE001 - reported below
            out["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=text_arrives, daemon=True)
    with transaction.atomic():  # the sweeper: holds the conversation's lock while it closes it
        Conversation.objects.select_for_update().filter(pk=earlier.conversation_id).update(
            status=Conversation.Status.CLOSED, closed_at=timezone.now()
        )
        thread.start()
        deadline = time.monotonic() + WAIT
        while not _waiting_on_a_lock():
            assert time.monotonic() < deadline, "the text never waited for the sweeper’s lock"
            time.sleep(0.02)
    thread.join(WAIT)

    assert "error" not in out, out.get("error")
    interaction, created = out["result"]
    assert created and interaction.conversation_id != earlier.conversation_id
    assert Conversation.objects.get(pk=interaction.conversation_id).status == Conversation.Status.OPEN
    assert Conversation.objects.get(pk=earlier.conversation_id).status == Conversation.Status.CLOSED


def test_a_call_answered_as_the_sweeper_closes_the_conversation_opens_a_new_one(tenant, monkeypatch):
    """call_open locks the open conversation the way session_open does: one another request had just opened
    and the sweeper closed before our lock is not used (it used to be: the call landed in a closed one)."""
    from conversations import services

    rafa = CustomerFactory(tenant=tenant, display_name="Rafa Ñúñez")
    earlier, _ = session_open(tenant=tenant, customer=rafa, channel="sms", at=timezone.now() - timedelta(days=2))
    Conversation.objects.filter(pk=earlier.conversation_id).update(status=Conversation.Status.CLOSED)
    real, calls = services._conversation_get_or_create, []

    def stale_first(**kwargs):
        calls.append(1)
        return (earlier.conversation, False) if len(calls) == 1 else real(**kwargs)

    monkeypatch.setattr(services, "_conversation_get_or_create", stale_first)
    call = services.call_open(
        tenant=tenant, customer=rafa, sender="+13055550123", recipient="+15550100001", status="ringing", call_sid="CA1"
    )
    assert len(calls) == 2 and call.interaction.conversation_id != earlier.conversation_id
    assert Conversation.objects.get(pk=call.interaction.conversation_id).status == Conversation.Status.OPEN
