"""Conversation tasks."""

from celery import shared_task

from conversations.services import close_idle


@shared_task
def close_idle_sessions() -> dict:
    """Beat task: close sessions past their idle window (which queues their enrichment)."""
    return close_idle()
