"""Conversation tasks."""

from celery import shared_task

from conversations.services import close_idle, state_purge_expired


@shared_task
def close_idle_sessions() -> dict:
    """Beat task: close sessions past their idle window (which queues their enrichment) and conversations past
    their tenant's quiet period (``conversation.closed``)."""
    return close_idle()


@shared_task
def purge_expired_state() -> int:
    """Beat task (retention): delete expired session state."""
    return state_purge_expired()
