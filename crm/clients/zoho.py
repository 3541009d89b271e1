"""Zoho CRM over its REST API v8 with ``httpx``.

Zoho's official Python SDKs are published per API version (``zcrmsdk`` last released 2021 for v2; the newer
``zohocrmsdk*`` packages each pin one version and bring their own token-store persistence), so a few documented
REST calls are smaller and easier to keep than the SDK:

- contacts: ``GET /crm/v8/Contacts/search?phone=…`` then ``?email=…`` (204 = no match), ``POST /crm/v8/Contacts``,
  ``PUT /crm/v8/Contacts/{id}`` (bodies ``{"data": [record]}``);
- voice / voicemail → ``POST /crm/v8/Calls`` (``Who_Id`` = the contact); other channels →
  ``POST /crm/v8/Notes`` with ``Parent_Id`` = the contact; a re-scored interaction → ``PUT`` the same record;
- an appointment → ``POST /crm/v8/Events`` (``Who_Id`` = the contact, ``Start_DateTime`` / ``End_DateTime``);
  a change → ``PUT /Events/{id}``; cancelled or no-show keeps the event with its title prefixed "Cancelled:" /
  "No-show:" (needs the ``ZohoCRM.modules.events.ALL`` scope);
- auth header ``Authorization: Zoho-oauthtoken <token>``; tokens at ``{accounts}/oauth/v2/token`` — a refused
  refresh token answers **200** ``{"error": "invalid_code"}`` (Zoho's way) → :class:`CrmAuthRevoked`.

The API domain (``api_domain`` of the token answer) and the accounts server differ per data centre (.com, .eu,
.in, .com.au, …) and are stored on the connection.
"""

from __future__ import annotations

import httpx
from django.conf import settings

from crm.clients.base import (
    ActivityData,
    ContactData,
    CrmAuthRevoked,
    CrmError,
    CrmRejected,
    CrmUnavailable,
    MeetingData,
    TokenSet,
    error_for_status,
    parse_retry_after,
)

API = "/crm/v8"
REVOKED_ERRORS = {"invalid_code", "invalid_grant", "invalid_client"}


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(settings.CRM_TIMEOUT_SECONDS, connect=5.0)


def _error(response: httpx.Response) -> CrmError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if isinstance(body, dict) and isinstance(body.get("data"), list) and body["data"]:
        body = body["data"][0]
    code = body.get("code", "") if isinstance(body, dict) else ""
    message = body.get("message", "") if isinstance(body, dict) else ""
    details = body.get("details") if isinstance(body, dict) else None
    text = f"Zoho {response.status_code}: {code} {message} {details or ''}".strip()
    return error_for_status(
        response.status_code, text, retry_after=parse_retry_after(response.headers.get("Retry-After"))
    )


class ZohoClient:
    """Contacts, Calls and Notes of one Zoho CRM org (``api_domain`` + OAuth access token)."""

    def __init__(self, *, access_token: str, api_domain: str) -> None:
        self.http = httpx.Client(
            base_url=api_domain.rstrip("/") + API,
            headers={"Authorization": f"Zoho-oauthtoken {access_token}"},
            timeout=_timeout(),
        )

    def _send(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CrmUnavailable(f"Zoho unreachable: {type(exc).__name__}")
        if response.status_code == 204:
            return {}
        if response.status_code >= 300:
            raise _error(response)
        body = response.json()
        rows = body.get("data") if isinstance(body, dict) else None
        if method in ("POST", "PUT") and rows and rows[0].get("status") == "error":  # per-record errors on 2xx
            raise CrmRejected(f"Zoho: {rows[0].get('code')} {rows[0].get('message')} {rows[0].get('details')}")
        return body

    def _write(self, method: str, path: str, record: dict) -> str:
        body = self._send(method, path, json={"data": [record], "trigger": []})
        return str(body["data"][0]["details"]["id"])

    def find_contact(self, contact: ContactData) -> str | None:
        """``GET /Contacts/search`` by phone, then email (204 No Content = nothing found)."""
        for param, value in (("phone", contact.phone), ("email", contact.email)):
            if not value:
                continue
            body = self._send("GET", "/Contacts/search", params={param: value, "fields": "id", "per_page": 1})
            if body.get("data"):
                return str(body["data"][0]["id"])
        return None

    @staticmethod
    def _contact_record(contact: ContactData) -> dict:
        record = {"Last_Name": contact.last_name, "First_Name": contact.first_name}
        record.update(Phone=contact.phone, Email=contact.email)
        return {k: v for k, v in record.items() if v}

    def create_contact(self, contact: ContactData) -> str:
        """``POST /Contacts``; returns the record id."""
        return self._write("POST", "/Contacts", self._contact_record(contact))

    def update_contact(self, remote_id: str, contact: ContactData) -> None:
        """``PUT /Contacts/{id}``."""
        self._write("PUT", f"/Contacts/{remote_id}", self._contact_record(contact))

    @staticmethod
    def _record(activity: ActivityData, contact_id: str | None) -> tuple[str, dict]:
        if activity.is_call:
            seconds = activity.duration_ms // 1000
            record: dict = {
                "Subject": activity.subject[:255],
                "Call_Type": "Inbound" if activity.direction == "inbound" else "Outbound",
                "Call_Start_Time": activity.started_at.replace(microsecond=0).isoformat(),
                "Call_Duration": f"{seconds // 60:02d}:{seconds % 60:02d}",
                "Description": activity.body,
            }
            if contact_id:
                record["Who_Id"] = {"id": contact_id}
            module = "Calls"
        else:
            record = {"Note_Title": activity.subject[:120], "Note_Content": activity.body}
            if contact_id:
                record["Parent_Id"] = {"module": {"api_name": "Contacts"}, "id": contact_id}
            module = "Notes"
        record.update(activity.custom)
        return module, record

    def create_activity(self, activity: ActivityData, *, contact_id: str) -> tuple[str, str]:
        """A Call (voice / voicemail) or a Note (other channels) on the contact."""
        module, record = self._record(activity, contact_id)
        return module, self._write("POST", f"/{module}", record)

    def update_activity(self, remote_type: str, remote_id: str, activity: ActivityData) -> None:
        """``PUT /Calls/{id}`` or ``/Notes/{id}``."""
        _, record = self._record(activity, None)
        self._write("PUT", f"/{remote_type}/{remote_id}", record)

    @staticmethod
    def _event(meeting: MeetingData, contact_id: str | None) -> dict:
        prefix = {"cancelled": "Cancelled: ", "no_show": "No-show: "}.get(meeting.outcome, "")
        record: dict = {
            "Event_Title": (prefix + meeting.title)[:255],
            "Start_DateTime": meeting.starts_at.replace(microsecond=0).isoformat(),
            "End_DateTime": meeting.ends_at.replace(microsecond=0).isoformat(),
            "Description": meeting.body,
        }
        if contact_id:
            record["Who_Id"] = {"id": contact_id}
        return record

    def create_meeting(self, meeting: MeetingData, *, contact_id: str) -> tuple[str, str]:
        """``POST /Events`` on the contact."""
        return "Events", self._write("POST", "/Events", self._event(meeting, contact_id))

    def update_meeting(self, remote_type: str, remote_id: str, meeting: MeetingData) -> None:
        """``PUT /Events/{id}``."""
        self._write("PUT", f"/{remote_type}/{remote_id}", self._event(meeting, None))

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self.http.close()

    def ping(self) -> str:
        """``GET /org``: the company name."""
        org = (self._send("GET", "/org").get("org") or [{}])[0]
        return f"Zoho CRM org {org.get('company_name', '?')}"


def _token_call(params: dict, *, accounts_url: str | None = None) -> TokenSet:
    url = f"{(accounts_url or settings.CRM_ZOHO_ACCOUNTS_URL).rstrip('/')}/oauth/v2/token"
    form = {"client_id": settings.CRM_ZOHO_CLIENT_ID, "client_secret": settings.CRM_ZOHO_CLIENT_SECRET, **params}
    try:
        answer = httpx.post(url, data=form, timeout=_timeout())
    except httpx.HTTPError as exc:
        raise CrmUnavailable(f"Zoho accounts unreachable: {type(exc).__name__}")
    try:
        body = answer.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if error in REVOKED_ERRORS:
        raise CrmAuthRevoked(f"Zoho {answer.status_code}: {error}", status_code=answer.status_code)
    if answer.status_code >= 300 or error or "access_token" not in body:
        raise error_for_status(
            answer.status_code if answer.status_code >= 300 else 400, f"Zoho {answer.status_code}: {error}"
        )
    return TokenSet(
        access_token=body["access_token"],
        refresh_token=body.get("refresh_token"),
        expires_in=body.get("expires_in"),
        instance_url=body.get("api_domain", ""),
    )


def refresh(*, refresh_token: str, accounts_url: str = "") -> TokenSet:
    """A new access token from the data centre's accounts server; raises :class:`CrmAuthRevoked`."""
    return _token_call({"grant_type": "refresh_token", "refresh_token": refresh_token}, accounts_url=accounts_url)


def exchange_code(*, code: str, redirect_uri: str, accounts_url: str = "") -> TokenSet:
    """Tokens and ``api_domain`` for an authorization code (``accounts-server`` of the redirect)."""
    return _token_call(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}, accounts_url=accounts_url
    )
