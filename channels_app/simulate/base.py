"""Sending signed Twilio-style requests to a running server (used by ``manage.py simulate``)."""

from __future__ import annotations

import httpx
from django.conf import settings
from twilio.request_validator import RequestValidator


def signed_post(*, server: str, path: str, params: dict[str, str], auth_token: str) -> httpx.Response:
    """POST ``params`` form-encoded to ``server`` + ``path`` with the ``X-Twilio-Signature`` Twilio would send.

    The signature is computed over ``PUBLIC_BASE_URL`` + ``path`` — the URL the server validates against.
    """
    signature = RequestValidator(auth_token).compute_signature(settings.PUBLIC_BASE_URL + path, params)
    return httpx.post(server.rstrip("/") + path, data=params, headers={"X-Twilio-Signature": signature}, timeout=15)
