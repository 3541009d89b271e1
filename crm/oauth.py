"""OAuth 2.0 authorization-code flow for the CRMs: the consent URL, the signed ``state`` and the code exchange.

``state`` is a Django-signed (``SECRET_KEY``, salt ``crm.oauth``) ``{tenant, provider, user, nonce}``, valid
:data:`STATE_MAX_AGE` seconds; the nonce is also kept in the admin's session and used once, so a state can't be
replayed or carried to another user's browser. Zoho's redirect names the data centre's accounts server
(``accounts-server``); only Zoho's own hosts (or ``CRM_ZOHO_ACCOUNTS_URL``) are accepted, since the client
secret is posted there.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core import signing

from crm.clients.base import TokenSet
from crm.models import CrmProvider

STATE_SALT = "crm.oauth"
STATE_MAX_AGE = 600  # seconds between the redirect to the CRM and its callback
SESSION_KEY = "crm_oauth_nonce"

SCOPES = {
    CrmProvider.HUBSPOT: "crm.objects.contacts.read crm.objects.contacts.write",
    CrmProvider.SALESFORCE: "api refresh_token",
    CrmProvider.ZOHO: (
        "ZohoCRM.modules.contacts.ALL ZohoCRM.modules.calls.ALL ZohoCRM.modules.notes.ALL "
        "ZohoCRM.modules.events.ALL ZohoCRM.org.READ"
    ),
}
ZOHO_ACCOUNTS_HOSTS = {
    "accounts.zoho.com",
    "accounts.zoho.eu",
    "accounts.zoho.in",
    "accounts.zoho.com.au",
    "accounts.zoho.jp",
    "accounts.zoho.ca",
    "accounts.zoho.sa",
    "accounts.zoho.uk",
    "accounts.zoho.com.cn",
}


class OAuthStateError(Exception):
    """The callback's ``state`` is missing, forged, expired, used or meant for another user / provider."""


def redirect_uri(provider: str) -> str:
    """The callback URL registered with the vendor's OAuth app: ``PUBLIC_BASE_URL/crm/oauth/<provider>/callback/``."""
    return f"{settings.PUBLIC_BASE_URL}/crm/oauth/{provider}/callback/"


def client_id(provider: str) -> str:
    """The OAuth client id from settings ("" when the vendor is not configured)."""
    ids: dict[str, str] = {
        CrmProvider.HUBSPOT: settings.CRM_HUBSPOT_CLIENT_ID,
        CrmProvider.SALESFORCE: settings.CRM_SALESFORCE_CLIENT_ID,
        CrmProvider.ZOHO: settings.CRM_ZOHO_CLIENT_ID,
    }
    return ids.get(provider, "")


def state_make(*, tenant_id, provider: str, user_id) -> tuple[str, str]:
    """``(state, nonce)``: keep the nonce in the session, send the state to the vendor."""
    nonce = secrets.token_urlsafe(16)
    state = signing.dumps({"t": str(tenant_id), "p": provider, "u": str(user_id), "n": nonce}, salt=STATE_SALT)
    return state, nonce


def state_check(*, state: str, nonce: str | None, provider: str, user_id) -> str:
    """The tenant id in a valid ``state``; raises :class:`OAuthStateError` otherwise."""
    try:
        data = signing.loads(state or "", salt=STATE_SALT, max_age=STATE_MAX_AGE)
    except signing.BadSignature as exc:  # includes SignatureExpired
        raise OAuthStateError(str(exc))
    if not nonce or data.get("n") != nonce:
        raise OAuthStateError("this sign-in link was already used or started in another browser")
    if data.get("p") != provider or data.get("u") != str(user_id):
        raise OAuthStateError("the sign-in answer is for another user or CRM")
    return data["t"]


def authorize_url(provider: str, state: str) -> str:
    """Where to send the admin to consent (the vendor's documented authorize endpoint)."""
    params = {
        "client_id": client_id(provider),
        "redirect_uri": redirect_uri(provider),
        "response_type": "code",
        "scope": SCOPES[CrmProvider(provider)],
        "state": state,
    }
    if provider == CrmProvider.HUBSPOT:
        base = settings.CRM_HUBSPOT_AUTHORIZE_URL
    elif provider == CrmProvider.SALESFORCE:
        base = f"{settings.CRM_SALESFORCE_LOGIN_URL}/services/oauth2/authorize"
    else:
        base = f"{settings.CRM_ZOHO_ACCOUNTS_URL}/oauth/v2/auth"
        params.update(access_type="offline", prompt="consent")
    return f"{base}?{urlencode(params)}"


def zoho_accounts_url(value: str) -> str:
    """The ``accounts-server`` of Zoho's redirect if it is one of Zoho's hosts (https) or the configured one;
    else the configured default."""
    configured = settings.CRM_ZOHO_ACCOUNTS_URL
    if not value:
        return configured
    parts = urlsplit(value)
    if value.rstrip("/") == configured or (parts.scheme == "https" and parts.hostname in ZOHO_ACCOUNTS_HOSTS):
        return f"{parts.scheme}://{parts.netloc}"
    raise OAuthStateError("unknown Zoho accounts server")


def exchange(provider: str, *, code: str, accounts_url: str = "") -> TokenSet:
    """Trade the authorization code for tokens (raises the clients' ``CrmError``s)."""
    if provider == CrmProvider.HUBSPOT:
        from crm.clients import hubspot

        return hubspot.exchange_code(code=code, redirect_uri=redirect_uri(provider))
    if provider == CrmProvider.SALESFORCE:
        from crm.clients import salesforce

        return salesforce.exchange_code(code=code, redirect_uri=redirect_uri(provider))
    from crm.clients import zoho

    return zoho.exchange_code(code=code, redirect_uri=redirect_uri(provider), accounts_url=accounts_url)
