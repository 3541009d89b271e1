"""What every CRM client takes and gives, and the errors they raise (vendor exceptions end at this boundary).

A client is built from a :class:`CrmConnection` (tokens, instance URL) and makes plain blocking HTTP calls; it
never touches the database. The delivery service (:mod:`crm.services`) decides retries, refreshes and disabling
from the exception type:

- :class:`CrmRateLimited` / :class:`CrmUnavailable`: transient (429, 5xx, timeouts, Salesforce's
  ``REQUEST_LIMIT_EXCEEDED``); retried with backoff, never sooner than ``retry_after`` seconds.
- :class:`CrmAuthExpired`: the access token was refused (401); refresh it once, then try again.
- :class:`CrmAuthRevoked`: the refresh token was refused (``invalid_grant``); the connection is disabled.
- :class:`CrmRejected`: any other 4xx; permanent, the delivery fails with the vendor's message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from django.utils import timezone


class CrmError(Exception):
    """Base of the CRM clients' errors: ``status_code`` (None for network errors) and a short message."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message[:400])
        self.status_code = status_code


class CrmRateLimited(CrmError):
    """429 (or the vendor's equivalent): retry after ``retry_after`` seconds (None = use the schedule)."""

    def __init__(self, message: str, *, status_code: int | None = 429, retry_after: float | None = None) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class CrmUnavailable(CrmError):
    """5xx, a timeout or a refused connection: transient."""


class CrmAuthExpired(CrmError):
    """The access token was refused (401): refresh it and try again once."""


class CrmAuthRevoked(CrmError):
    """The refresh token was refused (``invalid_grant``): only a new OAuth consent fixes it."""


class CrmRejected(CrmError):
    """A permanent 4xx (validation error, missing permission, unknown field)."""


@dataclass(frozen=True)
class TokenSet:
    """An OAuth token answer. ``refresh_token`` None = keep the stored one; ``expires_in`` seconds."""

    access_token: str
    refresh_token: str | None = None
    expires_in: int | None = None
    instance_url: str = ""
    external_account: str = ""


@dataclass(frozen=True)
class ContactData:
    """What a contact gets: E.164 phone and/or lower-case email (match keys), a name, our customer id."""

    customer_id: str
    phone: str = ""
    email: str = ""
    first_name: str = ""
    last_name: str = ""


@dataclass(frozen=True)
class ActivityData:
    """An interaction's summary for a CRM activity: no transcript text (PHI) — only what the scores say.

    ``fields`` are the summary values by our name (channel, direction, intent, sentiment, lead_score,
    satisfaction, escalated); ``custom`` maps CRM field names to values (the tenant's ``field_map``).
    """

    interaction_id: str
    subject: str
    body: str
    channel: str
    direction: str
    started_at: datetime
    ended_at: datetime | None
    admin_url: str
    fields: dict = field(default_factory=dict)
    custom: dict = field(default_factory=dict)

    @property
    def duration_ms(self) -> int:
        """Milliseconds between start and end (0 when still open)."""
        if not self.ended_at:
            return 0
        return max(0, int((self.ended_at - self.started_at).total_seconds() * 1000))

    @property
    def is_call(self) -> bool:
        """Voice and voicemail become calls; chat, SMS and email become notes / tasks."""
        return self.channel in ("voice", "voicemail")


@dataclass(frozen=True)
class MeetingData:
    """An appointment for the CRM's meeting / event: when, its state and a link — no reason for the visit (PHI).

    ``outcome`` is ``scheduled`` (first booking), ``rescheduled`` (moved), ``cancelled`` or ``no_show``;
    times are aware datetimes (UTC on the wire).
    """

    appointment_id: str
    title: str
    body: str
    starts_at: datetime
    ends_at: datetime
    outcome: str
    admin_url: str

    @property
    def cancelled(self) -> bool:
        """The visit will not happen (cancelled, or the patient did not come): the slot is free."""
        return self.outcome in ("cancelled", "no_show")


class CrmClient(Protocol):
    """One CRM's contact and activity calls (see the module docstring for the errors raised)."""

    def find_contact(self, contact: ContactData) -> str | None:
        """The id of an existing contact with the same phone (first) or email, or None."""
        ...

    def create_contact(self, contact: ContactData) -> str:
        """Create a contact; returns its id."""
        ...

    def update_contact(self, remote_id: str, contact: ContactData) -> None:
        """Refresh a mapped contact's phone / email / name."""
        ...

    def create_activity(self, activity: ActivityData, *, contact_id: str) -> tuple[str, str]:
        """Log the activity on the contact; returns ``(remote_type, remote_id)``."""
        ...

    def update_activity(self, remote_type: str, remote_id: str, activity: ActivityData) -> None:
        """Update a logged activity (a re-scored interaction)."""
        ...

    def create_meeting(self, meeting: MeetingData, *, contact_id: str) -> tuple[str, str]:
        """Put the appointment on the contact as a meeting / event; returns ``(remote_type, remote_id)``."""
        ...

    def update_meeting(self, remote_type: str, remote_id: str, meeting: MeetingData) -> None:
        """Move, cancel or mark a mapped meeting (a changed appointment)."""
        ...

    def ping(self) -> str:
        """A cheap authenticated read for "Test connection"; returns a short description of the account."""
        ...

    def close(self) -> None:
        """Release the client's HTTP connection pool (callers use ``contextlib.closing``)."""
        ...


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None when absent/garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or timezone.now())).total_seconds())


def error_for_status(status: int, message: str, *, retry_after: float | None = None) -> CrmError:
    """The error class for an HTTP status that is not a success."""
    if status == 429:
        return CrmRateLimited(message, status_code=status, retry_after=retry_after)
    if status == 401:
        return CrmAuthExpired(message, status_code=status)
    if status >= 500 or status in (408, 425):
        return CrmUnavailable(message, status_code=status)
    return CrmRejected(message, status_code=status)
