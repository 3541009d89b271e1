"""Which tenant and which conversation an inbound email belongs to, and the reply address we hand out.

Threading never looks at the subject. In order:

1. ``In-Reply-To`` then ``References`` (newest first) against the Message-IDs we sent (``OutboundEmail``) and
   received (``InboundEmail``, ``ChannelMessage.provider_id`` on channel ``email``) — of this tenant only;
2. the plus-address token of a recipient (``frontdesk+<token>@clinic.com``, :class:`EmailThread`);
3. nothing: the sender's open conversation (or a new one) is used.

Tenants are found by recipient: a tenant's :class:`EmailMailbox` address (plus part removed), else a reply
token's thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from channels_app.models import EmailMailbox, EmailThread, InboundEmail, OutboundEmail
from conversations.models import ChannelMessage, Conversation
from identity.models import Tenant


@dataclass
class ThreadMatch:
    """``conversation`` the message continues (None: none found) and how (``in-reply-to``, ``reply-token``)."""

    conversation: Conversation | None
    matched_by: str = ""


def split_plus(address: str) -> tuple[str, str]:
    """``("local@domain", "token")`` for ``local+token@domain``; token is ``""`` without a plus part."""
    local, _, domain = (address or "").lower().rpartition("@")
    base, plus, token = local.partition("+")
    return (f"{base}@{domain}" if domain else address.lower()), (token if plus else "")


def tenant_mailbox(tenant: Tenant) -> EmailMailbox | None:
    """The tenant's sending mailbox: the first enabled one (lowest id), or None."""
    return EmailMailbox.objects.filter(tenant=tenant, enabled=True).order_by("id").first()


def tenant_address(tenant: Tenant) -> str:
    """The address we send from for ``tenant``: its mailbox, else ``DEFAULT_FROM_EMAIL``."""
    mailbox = tenant_mailbox(tenant)
    return mailbox.address if mailbox else settings.DEFAULT_FROM_EMAIL


def reply_address(*, tenant: Tenant, thread: EmailThread) -> str:
    """The per-conversation reply address: the tenant's address with ``+<token>`` in the local part."""
    base = tenant_address(tenant)
    local, _, domain = base.rpartition("@")
    return f"{local}+{thread.token}@{domain}"


def thread_for(*, conversation: Conversation, subject: str = "") -> EmailThread:
    """The conversation's :class:`EmailThread`, created on first use (race-safe by its unique constraint)."""
    existing = EmailThread.objects.filter(conversation=conversation).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            return EmailThread.objects.create(
                tenant_id=conversation.tenant_id, conversation=conversation, subject=subject[:255]
            )
    except IntegrityError:
        return EmailThread.objects.get(conversation=conversation)


def find_tenant(recipients: list[str]) -> tuple[Tenant | None, EmailMailbox | None]:
    """The tenant (and mailbox, if any) a message addressed to ``recipients`` belongs to."""
    bases = {}
    for address in recipients:
        base, token = split_plus(address)
        bases.setdefault(base, token)
    mailbox = EmailMailbox.objects.select_related("tenant").filter(address__in=list(bases)).order_by("id").first()
    if mailbox:
        return mailbox.tenant, mailbox
    tokens = [t for t in bases.values() if t]
    thread = EmailThread.objects.select_related("tenant").filter(token__in=tokens).first() if tokens else None
    return (thread.tenant, None) if thread else (None, None)


def _by_message_ids(tenant: Tenant, ids: list[str]) -> Conversation | None:
    for message_id in ids:
        qualified = [message_id, f"{tenant.pk}/{message_id}"]
        sent = (
            OutboundEmail.objects.filter(channel_message__tenant=tenant, message_id=message_id)
            .select_related("channel_message__interaction__conversation")
            .first()
        )
        if sent:
            return sent.channel_message.interaction.conversation
        row = (
            ChannelMessage.objects.filter(tenant=tenant, channel="email", provider_id__in=qualified)
            .select_related("interaction__conversation")
            .first()
        )
        if row:
            return row.interaction.conversation
        received = InboundEmail.objects.filter(
            tenant=tenant, message_id=message_id, interaction__isnull=False
        ).select_related("interaction__conversation")
        if first := received.first():
            return first.interaction.conversation
    return None


def resolve_thread(*, tenant: Tenant, thread_ids: list[str], recipients: list[str]) -> ThreadMatch:
    """Find the conversation an inbound message continues (see the module docstring for the order)."""
    conversation = _by_message_ids(tenant, thread_ids)
    if conversation:
        return ThreadMatch(conversation, "in-reply-to")
    tokens = [token for _, token in map(split_plus, recipients) if token]
    if tokens:
        thread = EmailThread.objects.filter(tenant=tenant, token__in=tokens).select_related("conversation").first()
        if thread:
            return ThreadMatch(thread.conversation, "reply-token")
    return ThreadMatch(None)
