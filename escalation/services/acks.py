"""The three ways a responder acknowledges: the SMS link (``/a/<token>``), an SMS reply, a keypress.

Any of them calls :func:`~escalation.services.incidents.incident_acknowledge`, which stops the ladder and
cancels every pending attempt in one transaction, then hangs up the other page calls still ringing or in
progress (never the call a keypress came through: its own TwiML says goodbye and ends it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core import signing
from django.db import transaction
from django.utils import timezone

from escalation import selectors
from escalation.models import Incident, NotificationAttempt
from escalation.services.incidents import incident_acknowledge
from escalation.services.messages import ack_token_lookup
from identity.models import Tenant

ACK_WORDS = frozenset({"ACK", "1"})
#: Lifetime of the confirm page's form nonce (seconds); an older form re-renders with a fresh one.
ACK_FORM_MAX_AGE = 3600
_FORM_SALT = "escalation.ack-form"
RECENT_PAGE = timedelta(hours=24)


class AckOutcome(enum.Enum):
    CONFIRM = "confirm"  # GET: genuine and usable; show the confirm button
    ACKNOWLEDGED = "acknowledged"  # this request acknowledged the incident
    ALREADY = "already"  # the incident was already acknowledged (by anyone): nothing to do
    EXPIRED = "expired"
    USED = "used"
    CLOSED = "closed"  # the incident is no longer paging (exhausted)
    INVALID = "invalid"  # unknown, tampered or wrong-tenant token


@dataclass
class AckResult:
    """Outcome of an acknowledgement request, with the incident when the token was genuine."""

    outcome: AckOutcome
    incident: Incident | None = None


def _check(token, now: datetime) -> AckOutcome | None:
    if token is None or token.tenant_id != token.incident.tenant_id or token.tenant_id != token.responder.tenant_id:
        return AckOutcome.INVALID
    if token.incident.status == Incident.Status.ACKNOWLEDGED:
        return AckOutcome.ALREADY
    if token.used_at is not None:
        return AckOutcome.USED
    if token.expires_at <= now:
        return AckOutcome.EXPIRED
    if token.incident.status != Incident.Status.TRIGGERED:
        return AckOutcome.CLOSED
    return None


def ack_form_nonce(*, raw: str) -> str:
    """The confirm form's nonce: a timestamped signature (``SECRET_KEY``) over the link's token key."""
    return signing.TimestampSigner(salt=_FORM_SALT).sign(raw.partition(".")[0])


def ack_form_nonce_valid(*, raw: str, nonce: str) -> bool:
    """True if ``nonce`` came from the confirm page of this very link within :data:`ACK_FORM_MAX_AGE`."""
    try:
        key = signing.TimestampSigner(salt=_FORM_SALT).unsign(nonce or "", max_age=ACK_FORM_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired is a BadSignature
        return False
    return bool(key) and key == raw.partition(".")[0]


def ack_link_inspect(*, raw: str, now: datetime | None = None) -> AckResult:
    """What a GET of ``/a/<raw>`` shows (changes nothing: link scanners may GET freely)."""
    token = ack_token_lookup(raw)
    problem = _check(token, now or timezone.now())
    return AckResult(problem or AckOutcome.CONFIRM, token.incident if token else None)


def ack_by_link(*, raw: str, now: datetime | None = None) -> AckResult:
    """POST ``/a/<raw>``: consume the single-use token and acknowledge its incident as its responder.

    Refused: a token whose MAC does not verify (tampered, made up, or bound to another tenant) → INVALID;
    expired → EXPIRED; already used → USED; the incident already acknowledged → ALREADY (idempotent).
    """
    now = now or timezone.now()
    with transaction.atomic():
        token = ack_token_lookup(raw, for_update=True)
        problem = _check(token, now)
        if problem is not None:
            return AckResult(problem, token.incident if token else None)
        token.used_at = now
        token.save(update_fields=["used_at"])
        done = incident_acknowledge(
            incident=token.incident, responder=token.responder, via=Incident.AckVia.LINK, attempt=token.attempt, at=now
        )
    return AckResult(AckOutcome.ACKNOWLEDGED if done else AckOutcome.ALREADY, token.incident)


def ack_by_sms(*, tenant: Tenant, phone: str, body: str) -> bool:
    """An inbound SMS from a responder's number saying ``ACK`` or ``1``: acknowledge their newest paging
    incident. Returns True if the message was claimed (a responder's ACK never reaches the patient flow): when
    it acknowledged, or when the responder was paged in the last 24 hours (a late ACK)."""
    if (body or "").strip().strip(".!").upper() not in ACK_WORDS:
        return False
    responder, incident = selectors.open_incident_for_responder(tenant=tenant, phone=phone)
    if responder is None:
        return False
    if incident is not None:
        attempt = (
            NotificationAttempt.objects.filter(incident=incident, responder=responder, channel="sms")
            .order_by("-created_at")
            .first()
        )
        incident_acknowledge(incident=incident, responder=responder, via=Incident.AckVia.SMS, attempt=attempt)
        return True
    # a late ACK (someone else was faster) is still claimed if this responder was paged recently
    return NotificationAttempt.objects.filter(
        responder=responder, created_at__gte=timezone.now() - RECENT_PAGE
    ).exists()


def ack_by_keypress(*, attempt: NotificationAttempt, digits: str) -> AckResult:
    """A digit pressed on a page call: ``1`` acknowledges as the called responder; anything else does not."""
    incident = attempt.incident
    if (digits or "").strip() != "1":
        return AckResult(AckOutcome.INVALID, incident)
    done = incident_acknowledge(
        incident=incident, responder=attempt.responder, via=Incident.AckVia.KEYPRESS, attempt=attempt
    )
    if done:
        return AckResult(AckOutcome.ACKNOWLEDGED, incident)
    incident.refresh_from_db(fields=["status"])
    closed = incident.status != Incident.Status.ACKNOWLEDGED
    return AckResult(AckOutcome.CLOSED if closed else AckOutcome.ALREADY, incident)
