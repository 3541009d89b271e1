"""Salesforce through ``simple-salesforce`` (REST API; Salesforce ships no official Python client and this
community client is the maintained one) plus ``httpx`` for the OAuth 2.0 token endpoint it does not cover.

- contacts: SOQL ``SELECT Id FROM Contact WHERE Phone = … / Email = …`` (values quoted by ``format_soql``),
  ``POST /services/data/vXX.X/sobjects/Contact/``, ``PATCH …/Contact/{id}``;
- each interaction → a completed ``Task`` on the contact (``WhoId``): ``TaskSubtype`` ``Call`` for voice and
  voicemail (with ``CallType`` and ``CallDurationInSeconds``), ``Task`` otherwise;
- an appointment → an ``Event`` on the contact (``WhoId``, ``StartDateTime`` / ``EndDateTime``); a change →
  ``PATCH`` the same Event; a cancelled appointment or a no-show keeps its Event (history stays in the CRM) with
  the Subject prefixed "Cancelled:" / "No-show:" and ``ShowAs`` ``Free``, so the slot no longer shows as busy;
- tokens: ``POST {login}/services/oauth2/token``; a refused refresh token answers 400
  ``{"error": "invalid_grant"}`` → :class:`CrmAuthRevoked`. The token answer carries ``instance_url``.

Salesforce's API limits answer 403 ``REQUEST_LIMIT_EXCEEDED`` (no ``Retry-After``): transient, our schedule
applies. ``401 INVALID_SESSION_ID`` = the access token expired.
"""

from __future__ import annotations

import httpx
import requests
from django.conf import settings
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError
from simple_salesforce.format import format_soql

from crm.clients.base import (
    ActivityData,
    ContactData,
    CrmAuthRevoked,
    CrmError,
    CrmRateLimited,
    CrmUnavailable,
    MeetingData,
    TokenSet,
    error_for_status,
)


class _BoundedSession(requests.Session):
    """simple-salesforce sets no timeout; every request of this session gets ours."""

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", (5.0, settings.CRM_TIMEOUT_SECONDS))
        return super().request(method, url, *args, **kwargs)


def _translate(exc: SalesforceError) -> CrmError:
    content = exc.content if isinstance(exc.content, list) else [exc.content]
    first: dict = content[0] if content and isinstance(content[0], dict) else {}
    code, message = first.get("errorCode", ""), first.get("message", str(exc.content)[:200])
    text = f"Salesforce {exc.status}: {code} {message}".strip()
    if code == "REQUEST_LIMIT_EXCEEDED":
        return CrmRateLimited(text, status_code=exc.status, retry_after=None)
    return error_for_status(int(exc.status), text)


class SalesforceClient:
    """Contacts and Tasks of one org (``instance_url`` + OAuth access token)."""

    def __init__(self, *, access_token: str, instance_url: str) -> None:
        self.sf = Salesforce(
            instance_url=instance_url,
            session_id=access_token,
            version=settings.CRM_SALESFORCE_API_VERSION,
            session=_BoundedSession(),
        )

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SalesforceError as exc:
            raise _translate(exc)
        except requests.RequestException as exc:
            raise CrmUnavailable(f"Salesforce unreachable: {type(exc).__name__}")

    def find_contact(self, contact: ContactData) -> str | None:
        """The oldest Contact with this phone, else with this email."""
        for field, value in (("Phone", contact.phone), ("Email", contact.email)):
            if not value:
                continue
            soql = format_soql(f"SELECT Id FROM Contact WHERE {field} = {{}} ORDER BY CreatedDate LIMIT 1", value)
            answer = self._call(self.sf.query, soql)
            if answer.get("records"):
                return str(answer["records"][0]["Id"])
        return None

    @staticmethod
    def _contact_fields(contact: ContactData) -> dict:
        fields = {"LastName": contact.last_name, "FirstName": contact.first_name}
        fields.update(Phone=contact.phone, Email=contact.email)
        return {k: v for k, v in fields.items() if v}

    def create_contact(self, contact: ContactData) -> str:
        """``POST …/sobjects/Contact/``; returns the 18-character id."""
        return str(self._call(self.sf.Contact.create, self._contact_fields(contact))["id"])

    def update_contact(self, remote_id: str, contact: ContactData) -> None:
        """``PATCH …/sobjects/Contact/{id}``."""
        self._call(self.sf.Contact.update, remote_id, self._contact_fields(contact))

    @staticmethod
    def _task_fields(activity: ActivityData) -> dict:
        fields: dict = {
            "Subject": activity.subject[:255],
            "Description": activity.body,
            "Status": "Completed",
            "Priority": "High" if activity.fields.get("escalated") else "Normal",
            "ActivityDate": activity.started_at.date().isoformat(),
        }
        if activity.is_call:
            fields["CallType"] = "Inbound" if activity.direction == "inbound" else "Outbound"
            fields["CallDurationInSeconds"] = activity.duration_ms // 1000
        fields.update(activity.custom)
        return fields

    def create_activity(self, activity: ActivityData, *, contact_id: str) -> tuple[str, str]:
        """A completed Task on the contact (``TaskSubtype`` is set on create only, as Salesforce requires)."""
        fields = self._task_fields(activity)
        fields.update(WhoId=contact_id, TaskSubtype="Call" if activity.is_call else "Task")
        return "Task", str(self._call(self.sf.Task.create, fields)["id"])

    def update_activity(self, remote_type: str, remote_id: str, activity: ActivityData) -> None:
        """``PATCH …/sobjects/Task/{id}``."""
        self._call(self.sf.Task.update, remote_id, self._task_fields(activity))

    @staticmethod
    def _event_fields(meeting: MeetingData) -> dict:
        prefix = {"cancelled": "Cancelled: ", "no_show": "No-show: "}.get(meeting.outcome, "")
        return {
            "Subject": (prefix + meeting.title)[:255],
            "Description": meeting.body,
            "StartDateTime": meeting.starts_at.isoformat(),
            "EndDateTime": meeting.ends_at.isoformat(),
            "ShowAs": "Free" if meeting.cancelled else "Busy",
        }

    def create_meeting(self, meeting: MeetingData, *, contact_id: str) -> tuple[str, str]:
        """``POST …/sobjects/Event/`` with ``WhoId`` = the contact."""
        fields = {**self._event_fields(meeting), "WhoId": contact_id}
        return "Event", str(self._call(self.sf.Event.create, fields)["id"])

    def update_meeting(self, remote_type: str, remote_id: str, meeting: MeetingData) -> None:
        """``PATCH …/sobjects/Event/{id}``."""
        self._call(self.sf.Event.update, remote_id, self._event_fields(meeting))

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self.sf.session.close()

    def ping(self) -> str:
        """The org's name (``SELECT Name FROM Organization``)."""
        answer = self._call(self.sf.query, "SELECT Id, Name FROM Organization LIMIT 1")
        records = answer.get("records") or [{}]
        return f"Salesforce org {records[0].get('Name', '?')}"


def _token_call(form: dict, *, login_url: str | None = None) -> TokenSet:
    url = f"{(login_url or settings.CRM_SALESFORCE_LOGIN_URL).rstrip('/')}/services/oauth2/token"
    form = {
        "client_id": settings.CRM_SALESFORCE_CLIENT_ID,
        "client_secret": settings.CRM_SALESFORCE_CLIENT_SECRET,
        **form,
    }
    try:
        answer = httpx.post(url, data=form, timeout=httpx.Timeout(settings.CRM_TIMEOUT_SECONDS, connect=5.0))
    except httpx.HTTPError as exc:
        raise CrmUnavailable(f"Salesforce token endpoint unreachable: {type(exc).__name__}")
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if answer.status_code >= 300:
        text = f"Salesforce {answer.status_code}: {body.get('error', '')} {body.get('error_description', '')}".strip()
        if body.get("error") == "invalid_grant":
            raise CrmAuthRevoked(text, status_code=answer.status_code)
        raise error_for_status(answer.status_code, text)
    return TokenSet(
        access_token=body["access_token"],
        refresh_token=body.get("refresh_token"),
        instance_url=body.get("instance_url", ""),
        external_account=str(body.get("id", "")).rsplit("/", 2)[-2] if body.get("id") else "",
    )


def refresh(*, refresh_token: str) -> TokenSet:
    """A new access token (``grant_type=refresh_token``); raises :class:`CrmAuthRevoked` on ``invalid_grant``."""
    return _token_call({"grant_type": "refresh_token", "refresh_token": refresh_token})


def exchange_code(*, code: str, redirect_uri: str) -> TokenSet:
    """Tokens and ``instance_url`` for an authorization code from the consent redirect."""
    return _token_call({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})
