"""The one-statement writes of a call_logs row: workflow / metadata merges (``f || updates``) and
the live assessment (``UPDATE … RETURNING``) keep the read-modify-write semantics they replaced (issue 19)."""

from __future__ import annotations

import pytest
from django.db import connection

from conversations.models import Interaction
from conversations.services import interaction_set_assessment, interaction_set_metadata, interaction_set_workflow
from tests.factories import InteractionFactory


@pytest.mark.django_db
def test_merge_keeps_other_keys_and_a_stale_copy_does_not_lose_them():
    row = InteractionFactory(metadata={"MessageSid": "SM1"}, workflow={"turns_heard": 2})
    stale = Interaction.objects.get(pk=row.pk)
    interaction_set_workflow(interaction=row, updates={"turn_in_progress": {"turn": 3, "token": "ab"}})
    merged = interaction_set_workflow(interaction=stale, updates={"transfer": {"status": "dialing"}})
    assert merged == {
        "turns_heard": 2,
        "turn_in_progress": {"turn": 3, "token": "ab"},
        "transfer": {"status": "dialing"},
    }
    assert stale.workflow == merged
    interaction_set_workflow(interaction=row, updates={"turn_in_progress": None, "turns_heard": 3})
    row.refresh_from_db()
    assert row.workflow["turn_in_progress"] is None and row.workflow["turns_heard"] == 3
    assert interaction_set_metadata(interaction=row, updates={"ended_by": "caller’s hang-up"}) == {
        "MessageSid": "SM1",
        "ended_by": "caller’s hang-up",
    }


@pytest.mark.django_db
def test_merge_on_a_null_field_and_a_missing_row():
    row = InteractionFactory()
    with connection.cursor() as cursor:  # JSON null / a scalar, as an old row might hold: merged as {} before
        cursor.execute("UPDATE call_logs SET metadata = 'null'::jsonb, workflow = '3'::jsonb WHERE id = %s", [row.pk])
    assert interaction_set_workflow(interaction=row, updates={"b": 2}) == {"b": 2}
    assert interaction_set_metadata(interaction=row, updates={"a": 1}) == {"a": 1}
    pk = row.pk
    Interaction.objects.filter(pk=pk).delete()
    row.pk = pk
    with pytest.raises(Interaction.DoesNotExist):
        interaction_set_workflow(interaction=row, updates={"a": 1})


@pytest.mark.django_db
def test_assessment_only_raises_urgency_and_moves_updated_at_only_on_change():
    row = InteractionFactory(urgency=None, intent="")
    interaction_set_assessment(interaction=row, urgency=3, intent="book_appointment")
    row.refresh_from_db()
    assert (row.urgency, row.intent) == (3, "book_appointment")
    stamp = row.updated_at
    interaction_set_assessment(interaction=row, urgency=2, intent="book_appointment")
    row.refresh_from_db()
    assert (row.urgency, row.updated_at) == (3, stamp)
    interaction_set_assessment(interaction=row, urgency=9, intent="x" * 80)
    assert (row.urgency, row.intent) == (5, "x" * 64)
    row.refresh_from_db()
    assert (row.urgency, row.intent) == (5, "x" * 64) and row.updated_at > stamp


@pytest.mark.django_db
def test_message_status_is_mirrored_into_metadata_without_touching_other_keys():
    from conversations.models import ChannelMessage
    from conversations.services import message_status_update

    row = InteractionFactory(metadata={"MessageSid": "SM1", "messages": {"SM0": {"status": "delivered"}}})
    ChannelMessage.objects.create(
        tenant=row.tenant, interaction=row, channel="sms", direction="outbound", provider_id="SM2", body="ok"
    )
    assert message_status_update(channel="sms", provider_id="SM2", status="sent")
    assert not message_status_update(channel="sms", provider_id="SM2", status="queued")  # never backwards
    row.refresh_from_db()
    assert row.metadata["MessageSid"] == "SM1" and row.metadata["messages"]["SM0"] == {"status": "delivered"}
    assert row.metadata["messages"]["SM2"]["status"] == "sent"
    assert row.metadata["messages"]["SM2"]["direction"] == "outbound"
