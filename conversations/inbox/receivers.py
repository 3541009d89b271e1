"""The inbox reacts to patient messages on any channel (``customer_message_received``)."""

from __future__ import annotations

import logging

from conversations.inbox.services import conversation_customer_message
from conversations.signals import customer_message_received

logger = logging.getLogger(__name__)


def on_customer_message(sender, *, conversation_id, tenant_id, **kwargs) -> None:
    """Mark the message's conversation (:func:`conversation_customer_message`); a row without one has none."""
    if conversation_id is None:
        return
    try:
        conversation_customer_message(conversation_id=conversation_id, tenant_id=tenant_id)
    except Exception:  # the inbox mark must never cost the patient's message its other receivers
        logger.exception("inbox: could not mark conversation %s", conversation_id)


def connect() -> None:
    customer_message_received.connect(on_customer_message, dispatch_uid="conversations.inbox.customer_message")
