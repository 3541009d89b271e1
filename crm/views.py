"""OAuth connect / callback views for a clinic admin (Django admin session; other users get 403)."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET

from crm import oauth
from crm.clients.base import CrmError
from crm.models import CrmProvider
from crm.services import crm_connection_connect
from identity.admin_scoping import user_is_clinic_admin, user_tenant_id

logger = logging.getLogger(__name__)


def _provider(value: str) -> str:
    if value not in CrmProvider.values:
        raise Http404("unknown CRM")
    return value


def _back() -> HttpResponse:
    return redirect(reverse("admin:crm_crmconnection_changelist"))


@require_GET
@staff_member_required
def oauth_start(request: HttpRequest, provider: str) -> HttpResponse:
    """Send the clinic admin to the CRM's consent page with a signed, one-use ``state``."""
    provider = _provider(provider)
    if not user_is_clinic_admin(request.user):
        return HttpResponseForbidden("Only the clinic's admin can connect a CRM.")
    label = CrmProvider(provider).label
    if not oauth.client_id(provider):
        messages.error(request, f"{label} is not set up on this server yet (its OAuth client id is missing).")
        return _back()
    state, nonce = oauth.state_make(tenant_id=user_tenant_id(request.user), provider=provider, user_id=request.user.pk)
    request.session[oauth.SESSION_KEY] = nonce
    return redirect(oauth.authorize_url(provider, state))


@require_GET
@staff_member_required
def oauth_callback(request: HttpRequest, provider: str) -> HttpResponse:
    """The CRM's redirect after consent: check ``state``, trade the code for tokens, store them encrypted."""
    provider = _provider(provider)
    if not user_is_clinic_admin(request.user):
        return HttpResponseForbidden("Only the clinic's admin can connect a CRM.")
    label = CrmProvider(provider).label
    nonce = request.session.pop(oauth.SESSION_KEY, None)
    try:
        tenant_id = oauth.state_check(
            state=request.GET.get("state", ""), nonce=nonce, provider=provider, user_id=request.user.pk
        )
        if str(tenant_id) != str(user_tenant_id(request.user)):
            raise oauth.OAuthStateError("the sign-in answer is for another clinic")
        accounts_url = oauth.zoho_accounts_url(request.GET.get("accounts-server", "")) if provider == "zoho" else ""
    except oauth.OAuthStateError as exc:
        return HttpResponseBadRequest(f"This {label} sign-in cannot be used: {exc}. Start again from admin.")
    error = request.GET.get("error", "")
    if error:
        messages.warning(request, f"{label} was not connected: {error[:100]}.")
        return _back()
    code = request.GET.get("code", "")
    if not code or len(code) > 2000:
        return HttpResponseBadRequest(f"{label} sent no authorization code. Start again from admin.")
    try:
        tokens = oauth.exchange(provider, code=code, accounts_url=accounts_url)
    except CrmError as exc:
        logger.warning("crm %s code exchange failed for tenant %s: %s", provider, tenant_id, exc)
        messages.error(request, f"{label} refused the connection: {exc}")
        return _back()
    connection = crm_connection_connect(
        tenant_id=tenant_id, provider=provider, tokens=tokens, accounts_url=accounts_url
    )
    messages.success(request, f"{label} is connected. New conversations are sent to it once they are scored.")
    return redirect(reverse("admin:crm_crmconnection_change", args=[connection.pk]))
