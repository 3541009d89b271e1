"""Live updates for staff pages: events on the Channels group ``inbox.<tenant id>``.

Events carry ids and a kind only, never patient data: the page re-fetches what it shows through the
tenant-scoped admin views (see :mod:`conversations.inbox.consumer`).
"""

from __future__ import annotations

import logging

from django.db import transaction

from conversations.layer_send import group_send

logger = logging.getLogger(__name__)


def inbox_group(tenant_id) -> str:
    return f"inbox.{tenant_id}"


def _send(tenant_id, conversation_id, kind: str) -> None:
    try:
        group_send(inbox_group(tenant_id), {"type": "inbox.event", "conversation": str(conversation_id), "kind": kind})
    except Exception:  # a live update is a nicety: never fail the write that caused it
        logger.warning("inbox live update %s for %s not sent", kind, conversation_id, exc_info=True)


def inbox_notify(*, tenant_id, conversation_id, kind: str) -> None:
    """Tell the tenant's open staff pages that ``conversation_id`` changed (``kind``: ``message``,
    ``needs_human``, ``staff_message``, ``takeover``, ``release``, ``note``, ``assigned``, ``status``), on commit."""
    transaction.on_commit(lambda: _send(tenant_id, conversation_id, kind), robust=True)
