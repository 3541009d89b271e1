"""One signed HTTP attempt of a webhook message (Standard Webhooks), with the SSRF guard and hard limits.

Headers (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
``webhook-id`` (the message id, the same on every retry), ``webhook-timestamp`` (Unix seconds of this
attempt) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, computed by the
``standardwebhooks`` library; during a secret rotation one signature per valid secret, space-separated).
Redirects are not followed (a 3xx is a failed attempt), proxies from the environment are ignored (they would
bypass the IP pinning), timeouts are explicit, and at most :data:`MAX_RESPONSE_BYTES` of the answer are read.

httpx's timeouts bound each network operation, not the whole exchange: a receiver trickling one header byte
every few seconds would keep an attempt alive indefinitely ("slowloris" on the client, encode/httpx#1450).
The attempt therefore runs on ``httpx.AsyncClient`` under ``asyncio.timeout(settings.WEBHOOK_TOTAL_TIMEOUT)``,
the cancellation the httpx maintainers recommend for a total deadline. Celery's soft time limit
(``SoftTimeLimitExceeded``, raised by the worker's signal handler) is also turned into a failed result, so the
caller always gets to record the attempt.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from standardwebhooks import Webhook

from conversations.webhooks.ssrf import UnsafeTarget, resolve_target

MAX_RESPONSE_BYTES = 1024
USER_AGENT = "callsphere-webhooks/1.0"
SOFT_LIMIT_ERROR = "timeout: the task's soft time limit was reached"


@dataclass
class AttemptResult:
    """``status_code`` None when no HTTP answer came (``error`` says why); ``retry_after`` in seconds."""

    status_code: int | None = None
    error: str = ""
    retry_after: float | None = None
    duration_ms: int = 0
    body_excerpt: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def sign_headers(*, msg_id: str, body: str, secrets: list[str], at: datetime) -> dict[str, str]:
    """Standard Webhooks headers for ``body`` signed with every secret in ``secrets`` (newest first)."""
    signatures = " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signatures}


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date, RFC 9110 §10.2.3); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


async def _post(
    *,
    url: str,
    content: bytes,
    headers: dict[str, str],
    extensions: dict,
    at: datetime,
    transport: httpx.AsyncBaseTransport | None,
    result: AttemptResult,
) -> None:
    """Send the request and read at most MAX_RESPONSE_BYTES into ``result`` (filled in as it arrives, so a
    deadline hit while reading the body keeps the status that was already received)."""
    timeout = httpx.Timeout(settings.WEBHOOK_READ_TIMEOUT, connect=settings.WEBHOOK_CONNECT_TIMEOUT)
    async with httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, trust_env=False, transport=transport
    ) as client:
        request = client.build_request("POST", url, content=content, headers=headers, extensions=extensions)
        response = await client.send(request, stream=True)
        try:
            result.status_code = response.status_code
            result.retry_after = parse_retry_after(response.headers.get("retry-after"), at)
            excerpt = b""
            async for chunk in response.aiter_bytes():
                excerpt += chunk
                result.body_excerpt = excerpt[:MAX_RESPONSE_BYTES].decode(errors="replace")
                if len(excerpt) >= MAX_RESPONSE_BYTES:
                    break
        finally:
            await response.aclose()


async def _post_within(total: float, **kwargs) -> None:
    async with asyncio.timeout(total):
        await _post(**kwargs)


def send(
    *,
    url: str,
    msg_id: str,
    body: str,
    secrets: list[str],
    at: datetime,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AttemptResult:
    """POST ``body`` to ``url`` once; never raises for network or target problems (they are in the result).

    The whole exchange (connect, send, response headers, up to MAX_RESPONSE_BYTES of body) must finish within
    ``settings.WEBHOOK_TOTAL_TIMEOUT`` seconds; a 2xx status received before the deadline still counts as
    delivered. Must not be called from a running event loop (it runs its own with ``asyncio.run``).
    """
    started = time.monotonic()
    try:
        target = resolve_target(url)
    except UnsafeTarget as exc:
        return AttemptResult(error=f"refused: {exc}")
    except SoftTimeLimitExceeded:  # a name server that never answers
        return AttemptResult(error=SOFT_LIMIT_ERROR, duration_ms=int((time.monotonic() - started) * 1000))
    headers = {
        **sign_headers(msg_id=msg_id, body=body, secrets=secrets, at=at),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": target.host_header,
    }
    extensions = {"sni_hostname": target.hostname} if target.scheme == "https" else {}
    total = float(settings.WEBHOOK_TOTAL_TIMEOUT)
    result = AttemptResult()
    try:
        asyncio.run(
            _post_within(
                total,
                url=target.connect_url,
                content=body.encode(),
                headers=headers,
                extensions=extensions,
                at=at,
                transport=transport,
                result=result,
            )
        )
    except httpx.TimeoutException as exc:
        result.error = f"timeout: {type(exc).__name__}"
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:500]
    except TimeoutError:  # the total deadline (a status already received still stands)
        if result.status_code is None:
            result.error = f"timeout: no complete answer within {total:g} s (total deadline)"
    except SoftTimeLimitExceeded:
        result.status_code, result.error = None, SOFT_LIMIT_ERROR
    result.duration_ms = int((time.monotonic() - started) * 1000)
    if result.status_code is not None and not result.ok:
        result.error = f"HTTP {result.status_code}"
    return result
