"""Writes the agent's tools make besides appointments: callback requests, handoffs to staff, start fresh."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations import services as conv_services
from conversations.inbox.services import conversation_flag_needs_human
from conversations.models import CallbackRequest, Conversation, Interaction, StaffNotification
from conversations.signals import callback_requested

logger = logging.getLogger(__name__)


def callback_request(
    *,
    interaction: Interaction,
    phone: str,
    reason: str,
    context: dict | None = None,
    preferred_at: datetime | None = None,
) -> tuple[CallbackRequest, bool]:
    """Record that the customer wants a call back on ``phone`` (E.164); ``(request, created)``.

    At most one pending request per conversation (database constraint): asking twice returns the first. A
    :class:`StaffNotification` is created with it, and ``callback_requested`` is sent on commit so the voice
    channel can place the call.
    """
    existing = CallbackRequest.objects.filter(
        conversation_id=interaction.conversation_id,
        status__in=[CallbackRequest.Status.REQUESTED, CallbackRequest.Status.IN_PROGRESS],
    )
    if first := existing.first():
        return first, False
    try:
        with transaction.atomic():
            request = CallbackRequest.objects.create(
                tenant_id=interaction.tenant_id,
                customer_id=interaction.customer_id,
                conversation_id=interaction.conversation_id,
                interaction=interaction,
                phone=phone,
                reason=reason[:500],
                context=context or {},
                preferred_at=preferred_at,
            )
            staff_notification_open(
                interaction=interaction,
                kind=StaffNotification.Kind.CALLBACK,
                summary=f"Call back {phone}: {reason}"[:500],
            )
            transaction.on_commit(
                lambda: callback_requested.send(
                    sender=CallbackRequest, interaction_id=interaction.pk, callback_request_id=request.pk
                ),
                robust=True,
            )
    except IntegrityError:
        return existing.get(), False
    return request, True


def staff_notification_open(*, interaction: Interaction, kind: str, summary: str) -> tuple[StaffNotification, bool]:
    """The open staff notification of ``kind`` for ``interaction``, created if there is none; returns
    ``(notice, created)``. One open notice per (interaction, kind) is a constraint (``one_open_notice_per_kind``),
    so two parallel callers get the same row. ``summary`` is cut to 500 characters."""
    existing = StaffNotification.objects.filter(interaction=interaction, kind=kind, handled_at__isnull=True)
    if notice := existing.first():
        return notice, False
    try:
        with transaction.atomic():
            notice = StaffNotification.objects.create(
                tenant_id=interaction.tenant_id,
                customer_id=interaction.customer_id,
                interaction=interaction,
                kind=kind,
                summary=summary[:500],
            )
    except IntegrityError:  # a parallel caller created it
        return existing.get(), False
    return notice, True


def handoff_request(*, interaction: Interaction, reason: str) -> StaffNotification:
    """Hand the conversation to a human: mark the interaction escalated, notify staff in admin (once) and put the
    conversation at the top of the staff inbox (needs a human)."""
    with transaction.atomic():
        conv_services.interaction_mark_escalated(interaction=interaction)
        notice, _ = staff_notification_open(
            interaction=interaction,
            kind=StaffNotification.Kind.HANDOFF,
            summary=reason or "The customer asked for a person.",
        )
        conversation_flag_needs_human(conversation=interaction.conversation, reason=notice.summary)
    logger.info("handoff requested for interaction %s", interaction.pk)
    return notice


def staff_notification_mark_handled(*, notification: StaffNotification, user=None) -> bool:
    """Mark a staff notification handled by ``user``; False if it already was."""
    return bool(
        StaffNotification.objects.filter(pk=notification.pk, handled_at__isnull=True).update(
            handled_at=timezone.now(), handled_by=user
        )
    )


def conversation_start_fresh(*, conversation: Conversation) -> int:
    """Forget everything the agent remembered for this conversation (all session state); returns rows removed.

    The transcript (``call_logs``) and appointments stay: this resets what the agent carries forward.
    """
    return conv_services.state_delete(conversation=conversation)
