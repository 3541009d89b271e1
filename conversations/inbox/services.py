"""Writes of the staff inbox: needs-human, takeover and release, staff messages, notes, assignment, status.

Every function takes keyword-only arguments and runs in one transaction; live updates go out on commit
(:mod:`conversations.inbox.live`). Callers check tenant scoping before (the admin views and the API load
conversations through tenant-filtered querysets); these functions trust the conversation they are given.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from conversations.appointments import agent_settings_for
from conversations.inbox.live import inbox_notify
from conversations.inbox.models import ConversationHandling, InboxNote, Takeover
from conversations.inbox.outbox import SENDERS, ChannelUnavailable, StaffOutgoing, StaffSent
from conversations.models import Channel, Conversation, Interaction

logger = logging.getLogger(__name__)

MAX_STAFF_MESSAGE_CHARS = 1600  # ten SMS segments; emails and chat are held to the same bound
MAX_NOTE_CHARS = 4000
# Channels tried, in order, when the patient's last channel cannot take a staff message.
FALLBACK_ORDER = (Channel.CHAT, Channel.SMS, Channel.EMAIL)


def _now(at: datetime | None) -> datetime:
    return at or timezone.now()


def handling_for(*, conversation: Conversation, lock: bool = False) -> ConversationHandling:
    """The conversation's handling row, created on first use (locked with ``lock``)."""
    handling, _ = ConversationHandling.objects.get_or_create(
        conversation=conversation, defaults={"tenant_id": conversation.tenant_id}
    )
    if lock:
        handling = ConversationHandling.objects.select_for_update().get(pk=handling.pk)
    return handling


def _idle(conversation: Conversation) -> timedelta:
    return timedelta(minutes=agent_settings_for(conversation.tenant).takeover_idle_minutes)


def conversation_flag_needs_human(*, conversation: Conversation, reason: str, at: datetime | None = None) -> bool:
    """Put the conversation at the top of the inbox: it needs a human (the agent's hand-off, an urgent message,
    a failed automatic reply). Returns True if it was not flagged already."""
    at = _now(at)
    with transaction.atomic():
        handling = handling_for(conversation=conversation, lock=True)
        was = handling.needs_human
        handling.needs_human = True
        handling.needs_human_reason = (reason or "The patient asked for a person.")[:500]
        handling.needs_human_since = handling.needs_human_since or at
        handling.customer_waiting_since = handling.customer_waiting_since or at
        handling.status = ConversationHandling.Status.OPEN
        handling.unread = True
        handling.save(
            update_fields=[
                "needs_human",
                "needs_human_reason",
                "needs_human_since",
                "customer_waiting_since",
                "status",
                "unread",
                "updated_at",
            ]
        )
        inbox_notify(tenant_id=conversation.tenant_id, conversation_id=conversation.pk, kind="needs_human")
    return not was


def conversation_take_over(*, conversation: Conversation, user, at: datetime | None = None) -> Takeover:
    """Staff take the conversation over: the AI stops answering on every channel until
    :func:`conversation_release` or the tenant's ``takeover_idle_minutes`` after the last staff action.

    Taking over a conversation already taken over extends it (and makes ``user`` its owner). The conversation
    is assigned to ``user`` if it had no assignee.
    """
    at = _now(at)
    until = at + _idle(conversation)
    with transaction.atomic():
        handling = handling_for(conversation=conversation, lock=True)
        active = (
            Takeover.objects.select_for_update().filter(conversation=conversation, released_at__isnull=True).first()
        )
        if active is not None and active.paused_until <= at:  # lapsed (idle): close it where it ended
            Takeover.objects.filter(pk=active.pk).update(released_at=active.paused_until, release_reason="idle")
            active = None
        if active is None:
            active = Takeover.objects.create(
                conversation=conversation,
                tenant_id=conversation.tenant_id,
                staff=user,
                started_at=at,
                paused_until=until,
            )
            handling.taken_over_at = at
        else:
            active.staff, active.paused_until = user, max(active.paused_until, until)
            active.save(update_fields=["staff", "paused_until"])
        handling.taken_over_by = user
        handling.ai_paused_until = active.paused_until
        handling.assignee = handling.assignee or user
        handling.status = ConversationHandling.Status.OPEN
        handling.save(
            update_fields=["taken_over_by", "taken_over_at", "ai_paused_until", "assignee", "status", "updated_at"]
        )
        inbox_notify(tenant_id=conversation.tenant_id, conversation_id=conversation.pk, kind="takeover")
    return active


def conversation_release(
    *, conversation: Conversation, user=None, reason: str = "staff", at: datetime | None = None
) -> bool:
    """Return the conversation to the AI ("Return to AI"); returns False if it was not taken over.

    The needs-human flag is cleared: staff dealt with it. Messages the patient sent during the takeover are
    not answered by the AI afterwards (see :func:`conversations.selectors.ai_paused`).
    """
    at = _now(at)
    with transaction.atomic():
        handling = handling_for(conversation=conversation, lock=True)
        released = Takeover.objects.filter(conversation=conversation, released_at__isnull=True).update(
            released_at=at, released_by=user, release_reason=reason[:20]
        )
        handling.taken_over_by, handling.ai_paused_until = None, None
        handling.needs_human, handling.needs_human_since = False, None
        handling.customer_waiting_since = None
        handling.save(
            update_fields=[
                "taken_over_by",
                "ai_paused_until",
                "needs_human",
                "needs_human_since",
                "customer_waiting_since",
                "updated_at",
            ]
        )
        inbox_notify(tenant_id=conversation.tenant_id, conversation_id=conversation.pk, kind="release")
    return bool(released)


def _last_channel(conversation: Conversation) -> str | None:
    channel = (
        Interaction.objects.filter(conversation=conversation)
        .order_by("-last_activity_at")
        .values_list("channel", flat=True)
        .first()
    )
    return Channel.SMS if channel in (Channel.VOICE, Channel.VOICEMAIL) else channel


def staff_channel_choose(*, conversation: Conversation, channel: str | None = None) -> str:
    """The channel a staff message goes on: ``channel`` if given (raises :class:`ChannelUnavailable` when the
    patient cannot be reached there, e.g. an SMS after STOP), else the one the patient last used (a call or
    voicemail: SMS), else the first reachable of chat / SMS / email."""
    if channel:
        sender = SENDERS.get(channel)
        if sender is None:
            raise ChannelUnavailable("unknown_channel", f"staff messages cannot be sent by {channel}")
        if problem := sender.unavailable(conversation=conversation):
            raise problem
        return channel
    last = _last_channel(conversation)
    first_problem: ChannelUnavailable | None = None
    for candidate in [c for c in (last, *FALLBACK_ORDER) if c]:
        sender = SENDERS.get(candidate)
        if sender is None:
            continue
        problem = sender.unavailable(conversation=conversation)
        if problem is None:
            return candidate
        first_problem = first_problem or problem
    raise first_problem or ChannelUnavailable("no_address", "the patient cannot be reached on any channel")


def staff_display_name(user) -> str:
    """What the patient sees: the staff member's first name (never their login)."""
    return (getattr(user, "first_name", "") or "").strip() or "Our team"


def staff_message_send(
    *,
    conversation: Conversation,
    user,
    body: str,
    channel: str | None = None,
    idempotency_key: str | None = None,
    at: datetime | None = None,
) -> StaffSent:
    """Send ``body`` to the patient as staff member ``user`` and take the conversation over.

    The message is a transcript turn with role ``staff`` and ``staff_user_id`` in the ``call_logs`` row of the
    channel used (see :func:`staff_channel_choose`), delivered by the channel's outbound pipeline: an SMS
    honours STOP (refused here, and suppressed at delivery if STOP arrives in between), an email is a threaded
    reply, a chat message appears in the open widget. ``idempotency_key`` (default: random) makes a retried
    request send once. Raises ``ValueError`` for an empty or over-long body and :class:`ChannelUnavailable`.
    """
    at = _now(at)
    body = (body or "").strip()
    if not body:
        raise ValueError("the message is empty")
    if len(body) > MAX_STAFF_MESSAGE_CHARS:
        raise ValueError(f"messages are limited to {MAX_STAFF_MESSAGE_CHARS} characters")
    if conversation.status != Conversation.Status.OPEN:
        raise ChannelUnavailable("closed", "the conversation is closed; the patient's next message opens a new one")
    chosen = staff_channel_choose(conversation=conversation, channel=channel)
    key = f"staff:{idempotency_key or uuid.uuid4().hex}"[:255]
    name = staff_display_name(user)
    with transaction.atomic():
        conversation_take_over(conversation=conversation, user=user, at=at)
        sent = SENDERS[chosen].send(
            outgoing=StaffOutgoing(
                conversation=conversation,
                body=body,
                idempotency_key=key,
                staff_name=name,
                turn_extra={"staff_user_id": getattr(user, "pk", None), "staff_name": name},
            )
        )
        handling = handling_for(conversation=conversation, lock=True)
        handling.needs_human, handling.needs_human_since = False, None
        handling.customer_waiting_since, handling.unread = None, False
        handling.save(
            update_fields=["needs_human", "needs_human_since", "customer_waiting_since", "unread", "updated_at"]
        )
        inbox_notify(tenant_id=conversation.tenant_id, conversation_id=conversation.pk, kind="staff_message")
    logger.info("staff message sent in conversation %s by %s", conversation.pk, chosen)
    return sent


def conversation_customer_message(*, conversation_id, tenant_id=None, at: datetime | None = None) -> None:
    """A patient message arrived (any channel): mark the conversation unread and, while staff hold it (taken
    over or needing a human), waiting since ``at`` unless already waiting; a resolved one opens again.

    Runs on commit of every inbound message, in the webhook's request: one ``UPDATE`` of the handling row (no
    read-then-lock-then-save; the row lock lasts one statement), and only a conversation without a handling row
    yet pays for creating it. ``tenant_id`` (the conversation's) saves a read when the caller knows it."""
    at = _now(at)
    if tenant_id is None:
        tenant_id = Conversation.objects.filter(pk=conversation_id).values_list("tenant_id", flat=True).first()
        if tenant_id is None:
            return
    rows = ConversationHandling.objects.filter(conversation_id=conversation_id)
    staff_hold = Q(taken_over_by__isnull=False) | Q(needs_human=True)
    changes = {
        "unread": True,
        "customer_waiting_since": Case(
            When(staff_hold & Q(customer_waiting_since__isnull=True), then=Value(at)),
            default=F("customer_waiting_since"),
        ),
        "status": Case(
            When(status=ConversationHandling.Status.RESOLVED, then=Value(ConversationHandling.Status.OPEN)),
            default=F("status"),
        ),
        "updated_at": timezone.now(),
    }
    if not rows.update(**changes):
        _, created = ConversationHandling.objects.get_or_create(
            conversation_id=conversation_id, defaults={"tenant_id": tenant_id, "unread": True}
        )
        if not created:  # made meanwhile by another event: mark it as above
            rows.update(**changes)
    inbox_notify(tenant_id=tenant_id, conversation_id=conversation_id, kind="message")


def conversation_mark_read(*, conversation: Conversation) -> None:
    ConversationHandling.objects.filter(conversation=conversation, unread=True).update(unread=False)


def inbox_note_add(*, conversation: Conversation, user, body: str, at: datetime | None = None) -> InboxNote:
    """An internal note (never sent to the patient). Raises ``ValueError`` for an empty or over-long note."""
    body = (body or "").strip()
    if not body or len(body) > MAX_NOTE_CHARS:
        raise ValueError(f"a note has 1-{MAX_NOTE_CHARS} characters")
    with transaction.atomic():
        note = InboxNote.objects.create(
            conversation=conversation, tenant_id=conversation.tenant_id, author=user, body=body, created_at=_now(at)
        )
        inbox_notify(tenant_id=conversation.tenant_id, conversation_id=conversation.pk, kind="note")
    return note


def conversation_assign(*, conversation: Conversation, assignee) -> None:
    """Assign the conversation to ``assignee`` (a staff user of the tenant, checked by the caller) or nobody."""
    with transaction.atomic():
        handling = handling_for(conversation=conversation, lock=True)
        handling.assignee = assignee
        handling.save(update_fields=["assignee", "updated_at"])
        inbox_notify(tenant_id=conversation.tenant_id, conversation_id=conversation.pk, kind="assigned")


def conversation_set_status(*, conversation: Conversation, status: str) -> None:
    """Set the inbox status (open / pending / resolved); resolving clears needs-human."""
    if status not in ConversationHandling.Status.values:
        raise ValueError(f"unknown status {status!r}")
    with transaction.atomic():
        handling = handling_for(conversation=conversation, lock=True)
        handling.status = status
        fields = ["status", "updated_at"]
        if status == ConversationHandling.Status.RESOLVED:
            handling.needs_human, handling.needs_human_since, handling.customer_waiting_since = False, None, None
            fields += ["needs_human", "needs_human_since", "customer_waiting_since"]
        handling.save(update_fields=fields)
        inbox_notify(tenant_id=conversation.tenant_id, conversation_id=conversation.pk, kind="status")
