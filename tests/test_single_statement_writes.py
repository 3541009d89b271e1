"""Message status writes are single statements (issue 19) and still behave as the read-modify-write they
replaced: a status only moves forward, its mirror in ``metadata["messages"]`` keeps every other key, a
provider id and its first status land together."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from conversations import services
from conversations.models import ChannelMessage, Interaction
from tests.factories import CustomerFactory, InteractionFactory


def _message(interaction, *, provider_id="", status="pending", direction="outbound"):
    return ChannelMessage.objects.create(
        tenant=interaction.tenant,
        interaction=interaction,
        channel=interaction.channel,
        direction=direction,
        provider_id=provider_id,
        sender="+15550100001",
        recipient="+15551230001",
        body="See you Tuesday at 9 — reply C to confirm",
        status=status,
    )


@pytest.mark.django_db
def test_status_moves_forward_and_its_mirror_keeps_the_other_keys(tenant, other_tenant):
    row = InteractionFactory(
        conversation__customer=CustomerFactory(tenant=tenant),
        metadata={"call_sid": "", "messages": {"SMearlier": {"direction": "inbound", "status": "received"}}},
    )
    message = _message(row, provider_id="SMreply0001", status="queued")
    at = timezone.now()
    assert services.message_status_update(channel="sms", provider_id="SMreply0001", status="sent", at=at)
    assert not services.message_status_update(channel="sms", provider_id="SMreply0001", status="queued")
    assert not services.message_status_update(
        channel="sms", provider_id="SMreply0001", status="delivered", tenant=other_tenant
    )  # another clinic's callback cannot touch it
    assert not services.message_status_update(channel="sms", provider_id="SMreply0001", status="sent-ish")
    assert services.message_status_update(
        channel="sms", provider_id="SMreply0001", status="undelivered", error_code="30003", error_message="x" * 900
    )
    message.refresh_from_db()
    assert (message.status, message.error_code, len(message.error_message)) == ("undelivered", "30003", 500)
    metadata = Interaction.objects.get(pk=row.pk).metadata
    assert metadata["call_sid"] == "" and metadata["messages"]["SMearlier"]["status"] == "received"
    assert metadata["messages"]["SMreply0001"] == {
        "direction": "outbound",
        "status": "undelivered",
        "at": metadata["messages"]["SMreply0001"]["at"],
    }
    assert metadata["messages"]["SMreply0001"]["at"] > at.isoformat()


@pytest.mark.django_db
def test_status_of_a_message_whose_status_is_unknown_to_the_ranks(tenant):
    row = InteractionFactory(conversation__customer=CustomerFactory(tenant=tenant), metadata={})
    message = _message(
        row, provider_id="SModd000001", status="ringing"
    )  # a call status, not in MESSAGE_STATUS_RANK: rank 0
    assert services.message_status_update(channel="sms", provider_id="SModd000001", status="queued")
    message.refresh_from_db()
    assert message.status == "queued"
    assert Interaction.objects.get(pk=row.pk).metadata["messages"]["SModd000001"]["status"] == "queued"


@pytest.mark.django_db
def test_mark_sent_stores_the_sid_and_first_status_together(tenant):
    row = InteractionFactory(conversation__customer=CustomerFactory(tenant=tenant), metadata={"call_sid": "CA1"})
    message = _message(row)
    services.message_mark_sent(message=message, provider_id="SMnew000001", status="queued")
    stored = ChannelMessage.objects.get(pk=message.pk)
    assert (stored.provider_id, stored.status) == ("SMnew000001", "queued")
    assert (message.provider_id, message.status, message.status_updated_at) == (
        "SMnew000001",
        "queued",
        stored.status_updated_at,
    )
    assert abs(stored.status_updated_at - timezone.now()) < timedelta(minutes=1)
    metadata = Interaction.objects.get(pk=row.pk).metadata
    assert metadata == {"call_sid": "CA1", "messages": {"SMnew000001": metadata["messages"]["SMnew000001"]}}
    assert metadata["messages"]["SMnew000001"]["status"] == "queued"

    later = _message(row)
    services.message_mark_sent(message=later, provider_id="SMnew000002", status="pending")  # not a move forward
    stored = ChannelMessage.objects.get(pk=later.pk)
    assert (stored.provider_id, stored.status, later.status) == ("SMnew000002", "pending", "pending")
    assert "SMnew000002" not in Interaction.objects.get(pk=row.pk).metadata["messages"]


@pytest.mark.django_db
def test_append_once_appends_a_ref_once_in_one_statement(tenant, django_assert_num_queries):
    row = InteractionFactory(conversation__customer=CustomerFactory(tenant=tenant), channel="voice")
    with django_assert_num_queries(1):
        turn = services.interaction_append_turn_once(
            interaction=row, ref="CA1:1", role="customer", text="um, tuesday? if that’s ok", turn=1
        )
    assert turn is not None and turn["ref"] == "CA1:1" and turn["turn"] == 1
    elsewhere = Interaction.objects.get(pk=row.pk)  # a replayed webhook holds its own copy of the row
    elsewhere.transcript = []
    assert (
        services.interaction_append_turn_once(interaction=elsewhere, ref="CA1:1", role="customer", text="again") is None
    )
    assert [t["text"] for t in elsewhere.transcript] == ["um, tuesday? if that’s ok"]  # the stored transcript
    services.interaction_append_turn_once(interaction=row, ref="CA1:no-input:2:1", role="agent", text="Sorry?")
    stored = Interaction.objects.get(pk=row.pk).transcript
    assert [t["ref"] for t in stored] == ["CA1:1", "CA1:no-input:2:1"] == [t["ref"] for t in row.transcript]


@pytest.mark.django_db
def test_assessment_already_held_by_the_loaded_row_writes_nothing(tenant, django_assert_num_queries):
    row = InteractionFactory(conversation__customer=CustomerFactory(tenant=tenant), channel="sms")
    with django_assert_num_queries(1):
        services.interaction_set_assessment(interaction=row, urgency=2, intent="book")
    updated_at = Interaction.objects.get(pk=row.pk).updated_at
    with django_assert_num_queries(0):  # "ok thx" after "can i book for tues": nothing new to store
        services.interaction_set_assessment(interaction=row, urgency=1, intent="book")
        services.interaction_set_assessment(interaction=row, urgency=2)
    assert Interaction.objects.get(pk=row.pk).updated_at == updated_at

    stale = Interaction.objects.get(pk=row.pk)
    Interaction.objects.filter(pk=row.pk).update(urgency=4)  # raised meanwhile by another writer
    stale.urgency = None  # as loaded before that
    with django_assert_num_queries(1):
        services.interaction_set_assessment(interaction=stale, urgency=3)
    assert stale.urgency == 4 == Interaction.objects.get(pk=row.pk).urgency  # never lowered

    with django_assert_num_queries(1):
        services.interaction_set_assessment(interaction=row, urgency=5, intent="cancel")
    assert (Interaction.objects.get(pk=row.pk).urgency, row.intent) == (5, "cancel")

    deferred = Interaction.objects.defer("urgency").get(pk=row.pk)
    with django_assert_num_queries(1):  # never reads a deferred field to decide
        services.interaction_set_assessment(interaction=deferred, urgency=1)
