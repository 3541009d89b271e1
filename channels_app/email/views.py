"""``POST /email/inbound/``: a raw RFC 5322 message (``Content-Type: message/rfc822``) for the ingest service.

Used by ``manage.py simulate email`` and by any MTA pipe (e.g. a Postfix ``pipe`` transport with curl).
Authenticated like anymail's webhooks: HTTP basic auth against ``ANYMAIL["WEBHOOK_SECRET"]`` (``user:pass``,
one or a list; constant-time compare). Fails closed: without a configured secret every request gets 403.
Answers 200 with ``{"id", "status", "reason", "duplicate"}`` for every message it stored (also rejected ones,
so a sender does not retry what can never be accepted); 413 beyond ``EMAIL_INBOUND_MAX_BYTES``.
"""

from __future__ import annotations

from anymail.utils import get_anymail_setting, get_request_basic_auth
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from channels_app.email.ingest import email_ingest
from channels_app.models import InboundEmail


def _secrets() -> list[str]:
    value = get_anymail_setting("webhook_secret", default=[])
    return [value] if isinstance(value, str) and value else [v for v in value or [] if v]


def authorized(request: HttpRequest) -> bool:
    """True if the request's basic auth matches one of the configured webhook secrets (none: False)."""
    given = get_request_basic_auth(request)
    return bool(given) and any(constant_time_compare(given, secret) for secret in _secrets())


@csrf_exempt
@require_POST
def email_inbound_raw(request: HttpRequest) -> JsonResponse:
    """``POST /email/inbound/``: one raw RFC 5322 message (the body), HTTP basic auth with the inbound secret.

    403 without valid credentials, 413 over ``EMAIL_INBOUND_MAX_BYTES``; otherwise the ingest outcome as JSON.
    """
    if not authorized(request):
        return JsonResponse({"error": "unauthorized"}, status=403)
    length = int(request.headers.get("Content-Length") or 0)
    if length > settings.EMAIL_INBOUND_MAX_BYTES:
        return JsonResponse({"error": "message too large"}, status=413)
    result = email_ingest(raw=request.body, source=InboundEmail.Source.RAW)
    row = result.email
    return JsonResponse({"id": str(row.pk), "status": row.status, "reason": row.reason, "duplicate": result.duplicate})
