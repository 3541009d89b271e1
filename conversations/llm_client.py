"""The one place an OpenAI-compatible client is built (agent, triage second opinion, enrichment, voicemail STT).

``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` (any OpenAI-compatible server) come from settings; each caller states
its own timeout (seconds) and client-side retries, because a patient-facing turn and a background job differ:
a turn must answer within its deadline, a worker may retry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    import openai


def openai_client(*, timeout: float | None = None, max_retries: int = 0) -> openai.OpenAI:
    """An ``openai.OpenAI`` client; ``timeout`` defaults to ``OPENAI_TIMEOUT_SECONDS``. Builds no connection
    until used; API errors surface as ``openai.OpenAIError`` subclasses from the call that made them."""
    import openai

    return openai.OpenAI(
        api_key=settings.OPENAI_API_KEY or "unset",
        base_url=settings.OPENAI_BASE_URL,
        timeout=settings.OPENAI_TIMEOUT_SECONDS if timeout is None else timeout,
        max_retries=max_retries,
    )
