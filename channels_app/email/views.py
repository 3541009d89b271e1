"""``POST /email/inbound/``: a raw RFC 5322 message (``Content-Type: message/rfc822``) for the ingest service.

Used by ``manage.py simulate email`` and by any MTA pipe (e.g. a Postfix ``pipe`` transport with curl).
Authenticated like anymail's webhooks: HTTP basic auth against ``ANYMAIL["WEBHOOK_SECRET"]`` (``user:pass``,
one or a list; constant-time compare). Fails closed: without a configured secret every request gets 403.
Answers 200 with ``{"id", "status", "reason", "duplicate"}`` for every message it stored (also rejected ones,
so a sender does not retry what can never be accepted; a message that fails processing is ``quarantined``);
413 beyond ``EMAIL_INBOUND_MAX_BYTES`` (10 MiB, as the README says: the body is read here up to that bound, not
through ``request.body``, which Django caps at ``DATA_UPLOAD_MAX_MEMORY_SIZE``, 2.5 MB, for every other view).
"""

from __future__ import annotations

from anymail.utils import get_anymail_setting, get_request_basic_auth
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from channels_app.email.quarantine import email_ingest_or_quarantine
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
    limit = settings.EMAIL_INBOUND_MAX_BYTES
    length = request.headers.get("Content-Length") or "0"
    if not length.isdigit():
        return JsonResponse({"error": "bad Content-Length"}, status=400)
    if int(length) > limit:
        return JsonResponse({"error": "message too large"}, status=413)
    raw = request.read(limit + 1)
    if len(raw) > limit:
        return JsonResponse({"error": "message too large"}, status=413)
    result = email_ingest_or_quarantine(raw=raw, source=InboundEmail.Source.RAW)
    row = result.email
    return JsonResponse({"id": str(row.pk), "status": row.status, "reason": row.reason, "duplicate": result.duplicate})
