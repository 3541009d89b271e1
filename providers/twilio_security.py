"""Authenticating Twilio webhooks: tenant by our number, ``X-Twilio-Signature`` by the tenant's auth token.

The signature is HMAC-SHA1 over the full URL Twilio requested plus the sorted POST parameters
(https://www.twilio.com/docs/usage/security#validating-requests); the twilio library's ``RequestValidator``
computes it. The URL is rebuilt from ``settings.PUBLIC_BASE_URL`` + the request path and query, because
behind a TLS-terminating proxy Django sees ``http://internal-host`` while Twilio signed the public URL.
Everything fails closed: unknown number, tenant without a token, missing or wrong signature → 403, and the
view never runs, so nothing is written. The signature is checked over the parameters as sent; the view then
sees them with the characters PostgreSQL refuses (NUL, lone surrogates) replaced (:mod:`providers.text`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from identity.models import Tenant, TenantPhoneNumber
from providers.text import pg_querydict

logger = logging.getLogger(__name__)


def tenant_for_numbers(*numbers: str) -> Tenant | None:
    """The tenant owning the first of ``numbers`` (E.164) that is one of our numbers, else None."""
    for number in numbers:
        if number:
            row = TenantPhoneNumber.objects.select_related("tenant").filter(number=number).first()
            if row:
                return row.tenant
    return None


def public_url(request) -> str:
    """The URL Twilio called: ``PUBLIC_BASE_URL`` + path + query string."""
    return settings.PUBLIC_BASE_URL + request.get_full_path()


def twilio_webhook(
    *, tenant_fields: tuple[str, ...] = ("To",), find_tenant: Callable[[dict], Tenant | None] | None = None
):
    """Decorate a view as a Twilio webhook: POST only, CSRF-exempt, tenant found, signature valid.

    ``tenant_fields`` are the form fields tried in order to find our number (``To`` for inbound traffic,
    ``From`` for callbacks about messages and calls we placed). Callbacks that carry no number (e.g. the
    recording status callback) pass ``find_tenant(post) -> Tenant | None`` instead. On success
    ``request.tenant`` is set.
    """

    def lookup(post) -> Tenant | None:
        if find_tenant is not None:
            return find_tenant(post)
        return tenant_for_numbers(*(post.get(f, "") for f in tenant_fields))

    def decorator(view):
        @csrf_exempt
        @require_POST
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            raw_post = request.POST
            clean_post = pg_querydict(raw_post)
            tenant = lookup(clean_post)
            signature = request.headers.get("X-Twilio-Signature", "")
            reason = None
            if tenant is None:
                reason = "no tenant owns this number or call"
            elif not tenant.twilio_auth_token:
                reason = "tenant has no Twilio auth token"
            elif not signature:
                reason = "missing X-Twilio-Signature"
            elif (
                tenant.twilio_account_sid
                and request.POST.get("AccountSid", tenant.twilio_account_sid) != tenant.twilio_account_sid
            ):
                reason = "AccountSid does not match the tenant"
            elif not RequestValidator(tenant.twilio_auth_token).validate(public_url(request), raw_post, signature):
                reason = "invalid X-Twilio-Signature"
            if reason:
                logger.warning("rejected Twilio webhook %s: %s", request.path, reason)
                return HttpResponseForbidden(reason)
            request.tenant = tenant
            request.POST = clean_post
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def twiml_response(document) -> HttpResponse:
    """HTTP 200 carrying TwiML (``text/xml``): ``document`` is a twilio ``VoiceResponse`` /
    ``MessagingResponse`` or the XML string it renders to."""
    return HttpResponse(str(document), content_type="text/xml")
