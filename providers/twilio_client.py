"""The twilio library's REST client, configured with explicit timeouts and our exception mapping.

``settings.TWILIO_API_BASE`` replaces ``https://api.twilio.com`` in every request URL; production leaves it
alone, tests and benchmarks point it at a local stub of Twilio's API so the real client code runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from providers import ProviderPermanentError, ProviderTransientError

TWILIO_HOST = "https://api.twilio.com"


class _RebasingHttpClient(TwilioHttpClient):
    def request(self, method, url, *args, **kwargs):
        base = settings.TWILIO_API_BASE
        if base != TWILIO_HOST and url.startswith(TWILIO_HOST):
            url = base + url[len(TWILIO_HOST) :]
        return super().request(method, url, *args, **kwargs)


def twilio_client(tenant) -> Client:
    """A twilio ``Client`` for the tenant's account SID and auth token, with our timeout (seconds)."""
    http = _RebasingHttpClient(timeout=settings.TWILIO_TIMEOUT_SECONDS)
    return Client(tenant.twilio_account_sid, tenant.twilio_auth_token, http_client=http)


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Map twilio/requests exceptions to ProviderTransientError / ProviderPermanentError.

    429 and 5xx are transient; 5xx, read timeouts and dropped connections mean the request may have been
    processed (``request_sent=True``); connect timeouts/refusals mean it was not. Other 4xx are permanent.
    """
    try:
        yield
    except TwilioRestException as exc:
        if exc.status == 429:
            raise ProviderTransientError(exc.msg, code=exc.code or "", status=429) from exc
        if exc.status >= 500:
            raise ProviderTransientError(exc.msg, code=exc.code or "", status=exc.status, request_sent=True) from exc
        raise ProviderPermanentError(exc.msg, code=exc.code or "", status=exc.status) from exc
    except (requests.ConnectTimeout, requests.exceptions.SSLError) as exc:
        raise ProviderTransientError(f"connect failed: {exc}") from exc
    except requests.ConnectionError as exc:
        sent = not isinstance(exc.__context__, ConnectionRefusedError) and "refused" not in str(exc).lower()
        raise ProviderTransientError(f"connection error: {exc}", request_sent=sent) from exc
    except requests.Timeout as exc:
        raise ProviderTransientError(f"timeout: {exc}", request_sent=True) from exc
