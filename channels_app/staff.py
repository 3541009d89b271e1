"""Staff messages on the patient's channel (senders registered in :mod:`conversations.inbox.outbox`).

Each sender writes the staff turn (role ``staff``, ``staff_user_id``) and uses the channel's existing outbound
pipeline: SMS and email create a pending ``ChannelMessage`` (idempotency key ``staff:…``) delivered on commit by
``sms_deliver_task`` / ``email_deliver_task`` — claimed, retried, redriven, status callbacks, STOP honoured at
delivery too — and chat appends the turn to the open chat session and pushes a ``reply`` frame (role
``staff``, the staff member's first name) to the widget's group ``chat.<call_logs id>``.
"""

from __future__ import annotations

import logging

from django.db import transaction

from channels_app.email.outbound import conversation_email_ids, email_prepare, reply_subject
from channels_app.models import InboundEmail, OutboundEmail
from channels_app.sms.services import tenant_sender_number
from conversations.inbox.outbox import ChannelUnavailable, StaffOutgoing, StaffSent, register
from conversations.layer_send import group_send
from conversations.models import Channel, Conversation, Direction, Interaction
from conversations.services import interaction_append_turn, message_prepare_outbound, session_open
from identity.models import CustomerIdentifier, IdentifierKind

logger = logging.getLogger(__name__)


def _identifier(conversation: Conversation, kind: str) -> CustomerIdentifier | None:
    return (
        CustomerIdentifier.objects.filter(customer_id=conversation.customer_id, kind=kind)
        .order_by("-verified", "-created_at")
        .first()
    )


def _open_session(conversation: Conversation, channel: str) -> Interaction:
    interaction, _ = session_open(
        tenant=conversation.tenant,
        customer=conversation.customer,
        channel=channel,
        direction=Direction.OUTBOUND,
        idle_window=conversation.tenant.sms_idle_window,
    )
    return interaction


class SmsStaffSender:
    channel: str = Channel.SMS

    def unavailable(self, *, conversation: Conversation) -> ChannelUnavailable | None:
        phone = _identifier(conversation, IdentifierKind.PHONE)
        if phone is None:
            return ChannelUnavailable("no_address", "no phone number on file for SMS")
        if phone.sms_opted_out_at is not None:
            return ChannelUnavailable("opted_out", "the patient replied STOP: no SMS may be sent")
        try:
            tenant_sender_number(conversation.tenant)
        except ValueError:
            return ChannelUnavailable("no_address", "the clinic has no phone number to text from")
        return None

    def send(self, *, outgoing: StaffOutgoing) -> StaffSent:
        from channels_app.tasks import sms_deliver_task

        conversation = outgoing.conversation
        phone = _identifier(conversation, IdentifierKind.PHONE)
        assert phone is not None  # checked by unavailable()
        interaction = _open_session(conversation, Channel.SMS)
        message, created = message_prepare_outbound(
            interaction=interaction,
            sender=tenant_sender_number(conversation.tenant),
            recipient=phone.value,
            body=f"{outgoing.staff_name} ({conversation.tenant.short_name}): {outgoing.body}",
            idempotency_key=outgoing.idempotency_key,
            role="staff",
            transcript_text=outgoing.body,
            turn_extra=outgoing.turn_extra,
        )
        if created:
            transaction.on_commit(lambda: sms_deliver_task.delay(message.pk))
        return StaffSent(
            channel=self.channel, interaction=interaction, turn=interaction.transcript[-1], message=message
        )


class EmailStaffSender:
    channel: str = Channel.EMAIL

    def unavailable(self, *, conversation: Conversation) -> ChannelUnavailable | None:
        if _identifier(conversation, IdentifierKind.EMAIL) is None:
            return ChannelUnavailable("no_address", "no email address on file")
        return None

    def send(self, *, outgoing: StaffOutgoing) -> StaffSent:
        conversation = outgoing.conversation
        email = _identifier(conversation, IdentifierKind.EMAIL)
        assert email is not None  # checked by unavailable()
        last = (
            InboundEmail.objects.filter(interaction__conversation=conversation, status=InboundEmail.Status.ACCEPTED)
            .order_by("-received_at")
            .first()
        )
        interaction = Interaction.objects.filter(
            conversation=conversation, channel=Channel.EMAIL, ended_at__isnull=True
        ).first() or _open_session(conversation, Channel.EMAIL)
        body = f"{outgoing.body}\n\n{outgoing.staff_name}\n{conversation.tenant.short_name}"
        message, _ = email_prepare(
            interaction=interaction,
            to=email.value,
            body=body,
            subject=reply_subject(last.subject) if last else f"A message from {conversation.tenant.short_name}",
            kind=OutboundEmail.Kind.REPLY,
            idempotency_key=outgoing.idempotency_key,
            in_reply_to=last.message_id if last else "",
            references=conversation_email_ids(conversation.pk),
            role="staff",
            turn_extra=outgoing.turn_extra,
        )
        interaction.refresh_from_db(fields=["transcript"])
        return StaffSent(
            channel=self.channel, interaction=interaction, turn=interaction.transcript[-1], message=message
        )


def _open_chat(conversation: Conversation) -> Interaction | None:
    return Interaction.objects.filter(conversation=conversation, channel=Channel.CHAT, ended_at__isnull=True).first()


def _push_chat_frame(interaction_id, frame: dict) -> None:
    try:
        group_send(f"chat.{interaction_id}", {"type": "chat.frame", "frame": frame})
    except Exception:  # the turn is stored: the widget replays it on its next (re)connect
        logger.warning("staff chat frame for %s not pushed", interaction_id, exc_info=True)


class ChatStaffSender:
    channel: str = Channel.CHAT

    def unavailable(self, *, conversation: Conversation) -> ChannelUnavailable | None:
        if _open_chat(conversation) is None:
            return ChannelUnavailable("not_connected", "the patient has no open chat session")
        return None

    def send(self, *, outgoing: StaffOutgoing) -> StaffSent:
        interaction = _open_chat(outgoing.conversation)
        if interaction is None:
            raise ChannelUnavailable("not_connected", "the patient has no open chat session")
        row = Interaction.objects.select_for_update().get(pk=interaction.pk)
        existing = [i for i, t in enumerate(row.transcript) if t.get("ref") == outgoing.idempotency_key]
        if existing:  # a retried request: the turn is there already
            return StaffSent(channel=self.channel, interaction=row, turn=row.transcript[existing[0]])
        turn = interaction_append_turn(
            interaction=row, role="staff", text=outgoing.body, ref=outgoing.idempotency_key, **outgoing.turn_extra
        )
        seq = len(row.transcript) - 1
        frame = {
            "type": "reply",
            "seq": seq,
            "session": str(row.pk),
            "role": "staff",
            "name": outgoing.staff_name,
            "text": outgoing.body,
        }
        transaction.on_commit(lambda: _push_chat_frame(row.pk, frame), robust=True)
        return StaffSent(channel=self.channel, interaction=row, turn=turn)


for _sender in (SmsStaffSender(), EmailStaffSender(), ChatStaffSender()):
    register(_sender)
