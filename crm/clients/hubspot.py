"""HubSpot through its official client (``hubspot-api-client``): CRM v3 contacts, calls and notes; OAuth v1 tokens.

- contacts: ``POST /crm/v3/objects/contacts/search`` (phone, then email, ``EQ``), ``POST /crm/v3/objects/contacts``,
  ``PATCH /crm/v3/objects/contacts/{id}``;
- a voice call / voicemail → ``POST /crm/v3/objects/calls`` associated to the contact (HUBSPOT_DEFINED type 194);
  chat, SMS and email → ``POST /crm/v3/objects/notes`` (type 202); a re-scored interaction → ``PATCH`` the same;
- an appointment → ``POST /crm/v3/objects/meetings`` associated to the contact (type 200), start/end times and
  ``hs_meeting_outcome`` SCHEDULED / RESCHEDULED / CANCELED / NO_SHOW; a change → ``PATCH`` the same meeting;
- tokens: ``POST /oauth/v1/token`` (authorization_code / refresh_token). A refused refresh answers 400 with
  ``{"status": "BAD_REFRESH_TOKEN"}`` (or ``invalid_grant``) → :class:`CrmAuthRevoked`.

The base URL is ``settings.CRM_HUBSPOT_API_BASE`` (a local stub in tests). HubSpot's rate limits answer 429 with
``Retry-After`` (or only the ``X-HubSpot-RateLimit-*`` headers; then our schedule applies).
"""

from __future__ import annotations

import html
import json

import urllib3
from django.conf import settings
from hubspot import Client
from hubspot.crm.contacts import exceptions as contacts_exc
from hubspot.crm.contacts.models import Filter, FilterGroup, PublicObjectSearchRequest, SimplePublicObjectInput
from hubspot.crm.contacts.models import SimplePublicObjectInputForCreate as ContactCreate
from hubspot.crm.objects.calls import exceptions as calls_exc
from hubspot.crm.objects.calls.models import AssociationSpec, PublicAssociationsForObject, PublicObjectId
from hubspot.crm.objects.calls.models import SimplePublicObjectInput as CallUpdate
from hubspot.crm.objects.calls.models import SimplePublicObjectInputForCreate as CallCreate
from hubspot.crm.objects.meetings import exceptions as meetings_exc
from hubspot.crm.objects.meetings.models import SimplePublicObjectInput as MeetingUpdate
from hubspot.crm.objects.meetings.models import SimplePublicObjectInputForCreate as MeetingCreate
from hubspot.crm.objects.notes import exceptions as notes_exc
from hubspot.crm.objects.notes.models import SimplePublicObjectInput as NoteUpdate
from hubspot.crm.objects.notes.models import SimplePublicObjectInputForCreate as NoteCreate
from hubspot.oauth import exceptions as oauth_exc

from crm.clients.base import (
    ActivityData,
    ContactData,
    CrmAuthRevoked,
    CrmError,
    CrmUnavailable,
    MeetingData,
    TokenSet,
    error_for_status,
    parse_retry_after,
)

_API_ERRORS = (
    contacts_exc.ApiException,
    calls_exc.ApiException,
    notes_exc.ApiException,
    meetings_exc.ApiException,
    oauth_exc.ApiException,
)
CALL_TO_CONTACT = 194  # HubSpot-defined association type ids (CRM v4 associations docs)
NOTE_TO_CONTACT = 202
MEETING_TO_CONTACT = 200
#: our outcome → hs_meeting_outcome (HubSpot's meetings API: SCHEDULED, COMPLETED, RESCHEDULED, NO_SHOW, CANCELED)
MEETING_OUTCOMES = {
    "scheduled": "SCHEDULED",
    "rescheduled": "RESCHEDULED",
    "cancelled": "CANCELED",
    "no_show": "NO_SHOW",
}


def _message(exc) -> str:
    try:
        body = json.loads(exc.body or b"{}")
    except (TypeError, ValueError):
        body = {}
    if isinstance(body, dict):
        return f"HubSpot {exc.status}: {body.get('category') or body.get('status') or ''} {body.get('message') or ''}"
    return f"HubSpot {exc.status}: {exc.reason}"


def _translate(exc) -> CrmError:
    headers = exc.headers or {}
    return error_for_status(
        int(exc.status or 0), _message(exc), retry_after=parse_retry_after(headers.get("Retry-After"))
    )


class HubSpotClient:
    """HubSpot CRM v3 for one connection (an OAuth access token)."""

    def __init__(self, *, access_token: str) -> None:
        self.api = Client.create(
            access_token=access_token,
            host=settings.CRM_HUBSPOT_API_BASE,
            retry=urllib3.Retry(0),  # no retries here: crm.services retries with backoff
        )
        self.timeout = (5.0, settings.CRM_TIMEOUT_SECONDS)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, _request_timeout=self.timeout, **kwargs)
        except _API_ERRORS as exc:
            if not exc.status:  # the generated client wraps nothing; a status-less error is a network failure
                raise CrmUnavailable(f"HubSpot: {exc.reason}")
            raise _translate(exc)
        except urllib3.exceptions.HTTPError as exc:
            raise CrmUnavailable(f"HubSpot unreachable: {type(exc).__name__}")

    def find_contact(self, contact: ContactData) -> str | None:
        """Search by phone, then by email (exact ``EQ`` match); the first hit wins."""
        for prop, value in (("phone", contact.phone), ("email", contact.email)):
            if not value:
                continue
            request = PublicObjectSearchRequest(
                filter_groups=[FilterGroup(filters=[Filter(property_name=prop, operator="EQ", value=value)])],
                properties=["phone", "email"],
                limit=1,
            )
            page = self._call(self.api.crm.contacts.search_api.do_search, public_object_search_request=request)
            if page.results:
                return str(page.results[0].id)
        return None

    @staticmethod
    def _contact_properties(contact: ContactData) -> dict:
        props = {"phone": contact.phone, "email": contact.email, "firstname": contact.first_name}
        props["lastname"] = contact.last_name
        return {k: v for k, v in props.items() if v}

    def create_contact(self, contact: ContactData) -> str:
        """``POST /crm/v3/objects/contacts``; returns the new contact id."""
        body = ContactCreate(properties=self._contact_properties(contact), associations=[])
        created = self._call(self.api.crm.contacts.basic_api.create, simple_public_object_input_for_create=body)
        return str(created.id)

    def update_contact(self, remote_id: str, contact: ContactData) -> None:
        """``PATCH /crm/v3/objects/contacts/{id}`` with the phone / email / name we know."""
        body = SimplePublicObjectInput(properties=self._contact_properties(contact))
        self._call(self.api.crm.contacts.basic_api.update, contact_id=remote_id, simple_public_object_input=body)

    @staticmethod
    def _activity_properties(activity: ActivityData) -> dict:
        props: dict = {"hs_timestamp": activity.started_at.isoformat()}
        if activity.is_call:
            props.update(
                hs_call_title=activity.subject,
                hs_call_body=activity.body,
                hs_call_direction="INBOUND" if activity.direction == "inbound" else "OUTBOUND",
                hs_call_duration=str(activity.duration_ms),
                hs_call_status="COMPLETED",
            )
        else:
            lines = "<br>".join(html.escape(line) for line in activity.body.splitlines())
            props["hs_note_body"] = f"<p><strong>{html.escape(activity.subject)}</strong></p><p>{lines}</p>"
        props.update({k: "" if v is None else str(v) for k, v in activity.custom.items()})
        return props

    def create_activity(self, activity: ActivityData, *, contact_id: str) -> tuple[str, str]:
        """A call (voice / voicemail) or a note (other channels) associated to ``contact_id``."""
        kind, type_id = ("calls", CALL_TO_CONTACT) if activity.is_call else ("notes", NOTE_TO_CONTACT)
        association = PublicAssociationsForObject(
            to=PublicObjectId(id=contact_id),
            types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=type_id)],
        )
        props = self._activity_properties(activity)
        if kind == "calls":
            body = CallCreate(properties=props, associations=[association])
            created = self._call(
                self.api.crm.objects.calls.basic_api.create, simple_public_object_input_for_create=body
            )
        else:
            body = NoteCreate(properties=props, associations=[association])
            created = self._call(
                self.api.crm.objects.notes.basic_api.create, simple_public_object_input_for_create=body
            )
        return kind, str(created.id)

    def update_activity(self, remote_type: str, remote_id: str, activity: ActivityData) -> None:
        """``PATCH /crm/v3/objects/{calls|notes}/{id}``."""
        props = self._activity_properties(activity)
        if remote_type == "calls":
            self._call(
                self.api.crm.objects.calls.basic_api.update,
                call_id=remote_id,
                simple_public_object_input=CallUpdate(properties=props),
            )
        else:
            self._call(
                self.api.crm.objects.notes.basic_api.update,
                note_id=remote_id,
                simple_public_object_input=NoteUpdate(properties=props),
            )

    @staticmethod
    def _meeting_properties(meeting: MeetingData) -> dict:
        lines = "<br>".join(html.escape(line) for line in meeting.body.splitlines())
        return {
            "hs_timestamp": meeting.starts_at.isoformat(),
            "hs_meeting_title": meeting.title,
            "hs_meeting_body": f"<p>{lines}</p>",
            "hs_meeting_start_time": meeting.starts_at.isoformat(),
            "hs_meeting_end_time": meeting.ends_at.isoformat(),
            "hs_meeting_outcome": MEETING_OUTCOMES[meeting.outcome],
        }

    def create_meeting(self, meeting: MeetingData, *, contact_id: str) -> tuple[str, str]:
        """``POST /crm/v3/objects/meetings`` associated to ``contact_id`` (type 200)."""
        association = PublicAssociationsForObject(
            to=PublicObjectId(id=contact_id),
            types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=MEETING_TO_CONTACT)],
        )
        body = MeetingCreate(properties=self._meeting_properties(meeting), associations=[association])
        created = self._call(self.api.crm.objects.meetings.basic_api.create, simple_public_object_input_for_create=body)
        return "meetings", str(created.id)

    def update_meeting(self, remote_type: str, remote_id: str, meeting: MeetingData) -> None:
        """``PATCH /crm/v3/objects/meetings/{id}`` (times and outcome)."""
        self._call(
            self.api.crm.objects.meetings.basic_api.update,
            meeting_id=remote_id,
            simple_public_object_input=MeetingUpdate(properties=self._meeting_properties(meeting)),
        )

    def close(self) -> None:
        """Nothing to release: HubSpot's generated client builds an ``ApiClient`` (and its urllib3 pool) per API
        access, dropped with it."""

    def ping(self) -> str:
        """``GET /crm/v3/objects/contacts?limit=1`` (needs the contacts read scope)."""
        page = self._call(self.api.crm.contacts.basic_api.get_page, limit=1)
        return f"HubSpot answered; {len(page.results)} contact(s) visible on the first page"


def _token_call(**form) -> TokenSet:
    api = Client.create(host=settings.CRM_HUBSPOT_API_BASE, retry=urllib3.Retry(0))
    try:
        answer = api.oauth.tokens_api.create(
            client_id=settings.CRM_HUBSPOT_CLIENT_ID,
            client_secret=settings.CRM_HUBSPOT_CLIENT_SECRET,
            _request_timeout=(5.0, settings.CRM_TIMEOUT_SECONDS),
            **form,
        )
    except oauth_exc.ApiException as exc:
        text = (exc.body or b"").decode() if isinstance(exc.body, bytes) else str(exc.body or "")
        if exc.status in (400, 401) and ("BAD_REFRESH_TOKEN" in text or "invalid_grant" in text):
            raise CrmAuthRevoked(_message(exc), status_code=exc.status)
        raise _translate(exc) if exc.status else CrmUnavailable(f"HubSpot: {exc.reason}")
    except urllib3.exceptions.HTTPError as exc:
        raise CrmUnavailable(f"HubSpot unreachable: {type(exc).__name__}")
    return TokenSet(access_token=answer.access_token, refresh_token=answer.refresh_token, expires_in=answer.expires_in)


def refresh(*, refresh_token: str) -> TokenSet:
    """A new access token from the refresh token (``POST /oauth/v1/token``); raises :class:`CrmAuthRevoked`."""
    return _token_call(grant_type="refresh_token", refresh_token=refresh_token)


def exchange_code(*, code: str, redirect_uri: str) -> TokenSet:
    """Tokens for an authorization code from the consent redirect."""
    return _token_call(grant_type="authorization_code", code=code, redirect_uri=redirect_uri)
