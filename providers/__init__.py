"""Provider backends (SMS, voice), chosen by dotted path in settings like Django's ``EMAIL_BACKEND``.

Vendor exceptions become the exceptions below at this boundary, so callers never import twilio.
"""

from __future__ import annotations


class ProviderError(Exception):
    """A provider call failed. ``code`` is the provider's error code (e.g. Twilio ``21211``) or ""."""

    def __init__(self, message: str, *, code: str = "", status: int | None = None):
        super().__init__(message)
        self.code = str(code or "")
        self.status = status


class ProviderTransientError(ProviderError):
    """Worth retrying with backoff: HTTP 429, 5xx, connection errors and timeouts.

    ``request_sent`` is True when the request may have reached the provider (a 5xx or a read timeout), so
    the caller must reconcile (look the message or call up) before sending again.
    """

    def __init__(self, message: str, *, code: str = "", status: int | None = None, request_sent: bool = False):
        super().__init__(message, code=code, status=status)
        self.request_sent = request_sent


class ProviderPermanentError(ProviderError):
    """Never retried: invalid number (21211), opted out (21610), not SMS-capable (21614), other 4xx."""


#: Celery retry options for tasks that call a provider: only transient provider errors (429, 5xx, timeouts)
#: are retried, with exponential backoff (2 s, 4 s, … capped at 120 s), jitter, and at most 6 retries.
PROVIDER_RETRY = {
    "autoretry_for": (ProviderTransientError,),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 6,
}
