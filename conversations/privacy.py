"""conversations' part of erase and export (see :mod:`identity.privacy`): call_logs text, channel messages,
session state, callbacks, staff notifications, inbox notes, triage rationales and webhook payloads.

Rows with numbers stay (channel, direction, times, sentiment, lead score, intent, satisfaction, escalated):
dashboards keep their totals; the patient behind them is the anonymised customer.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils import timezone

from conversations.inbox.models import ConversationHandling, InboxNote
from conversations.models import (
    Appointment,
    CallbackRequest,
    ChannelMessage,
    Conversation,
    Interaction,
    SessionState,
    StaffNotification,
)
from conversations.recordings.models import RecordingDeletion
from conversations.recordings.services import recording_deletions_request, recording_sids
from conversations.triage.models import TriageDecision
from conversations.webhooks.models import WebhookMessage
from identity.models import Customer
from identity.privacy import Export, PrivacyHandler

ERASED = "(erased)"


def _numbers_only(metadata: dict) -> dict:
    """Keep what counts (durations, counts, flags); drop every string (numbers, SIDs, URLs, addresses)."""
    kept = {k: v for k, v in (metadata or {}).items() if isinstance(v, int | float | bool)}
    return {**kept, "erased": True}


def erase(customers: list[Customer]) -> dict[str, int]:
    ids = [c.pk for c in customers]
    str_ids = [str(i) for i in ids]
    interactions = Interaction.objects.filter(customer_id__in=ids)
    counts: dict[str, int] = {"interactions": 0}
    now = timezone.now()
    recordings: dict[Any, set[str]] = {}
    for row in interactions.only("pk", "tenant_id", "metadata"):
        recordings.setdefault(row.tenant_id, set()).update(recording_sids(row.metadata))
        counts["interactions"] += Interaction.objects.filter(pk=row.pk).update(
            transcript=[],
            metadata=_numbers_only(row.metadata),
            updated_at=now,  # the warehouse takes it again
        )
    # the provider keeps the audio until told: channels_app deletes it there once this commits
    counts["recordings"] = sum(
        recording_deletions_request(tenant_id=tenant_id, sids=sids, reason=RecordingDeletion.Reason.ERASE)
        for tenant_id, sids in recordings.items()
    )
    counts["channel_messages"] = ChannelMessage.objects.filter(interaction__customer_id__in=ids).update(
        sender="", recipient="", body="", error_message=""
    )
    counts["session_state"] = SessionState.objects.filter(conversation__customer_id__in=ids).delete()[0]
    counts["callbacks"] = CallbackRequest.objects.filter(customer_id__in=ids).update(phone="", reason="", context={})
    counts["staff_notifications"] = StaffNotification.objects.filter(customer_id__in=ids).update(summary=ERASED)
    counts["inbox_notes"] = InboxNote.objects.filter(conversation__customer_id__in=ids).delete()[0]
    ConversationHandling.objects.filter(conversation__customer_id__in=ids).update(needs_human_reason="")
    counts["triage_decisions"] = TriageDecision.objects.filter(interaction__customer_id__in=ids).update(
        llm_rationale="", llm_error=""
    )
    about = Q(payload__data__customer__in=str_ids) | Q(payload__data__customer__id__in=str_ids)
    counts["webhook_messages"] = WebhookMessage.objects.filter(about).update(
        payload={"type": "erased", "data": {"erased": True}}
    )
    counts["conversations_closed"] = Conversation.objects.filter(
        customer_id__in=ids, status=Conversation.Status.OPEN
    ).update(status=Conversation.Status.CLOSED, closed_at=timezone.now())
    return counts


def export(customer: Customer) -> Export:
    data: dict[str, Any] = {
        "conversations": list(
            Conversation.objects.filter(customer=customer).values("id", "status", "opened_at", "closed_at")
        ),
        "interactions": list(
            Interaction.objects.filter(customer=customer)
            .order_by("started_at")
            .values(
                "id",
                "conversation_id",
                "channel",
                "direction",
                "started_at",
                "ended_at",
                "transcript",
                "sentiment",
                "lead_score",
                "intent",
                "satisfaction",
                "escalated",
                "metadata",
            )
        ),
        "messages": list(
            ChannelMessage.objects.filter(interaction__customer=customer).values(
                "interaction_id", "direction", "sender", "recipient", "body", "status", "created_at"
            )
        ),
        "appointments": list(
            Appointment.objects.filter(customer=customer).values("id", "resource", "starts_at", "ends_at", "status")
        ),
        "callbacks": list(
            CallbackRequest.objects.filter(customer=customer).values("phone", "reason", "status", "created_at")
        ),
        "inbox_notes": list(
            InboxNote.objects.filter(conversation__customer=customer).values("conversation_id", "body", "created_at")
        ),
    }
    return Export(data=data)


HANDLER = PrivacyHandler(name="conversations", erase=erase, export=export)
