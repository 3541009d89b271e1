"""The responder portal behind an ack link (``/a/<token>/portal``).

PHI (the patient's first name and number, what they said, the clinic's notes) is shown only when all hold:
the link is genuine (its HMAC, :func:`~escalation.services.messages.ack_token_lookup`), younger than the tenant's
``portal_ttl_seconds`` (default 12 h), its incident was acknowledged by the link's own responder, and that person
proved it is them — a 6-digit code texted to the responder's phone (10 min, 5 tries, one new code per 30 s) or
their staff login (the user linked to that responder). A verified code sets a signed cookie scoped to the
link's path for the rest of the link's life. Every step is recorded (``PortalAccess``: who, what, when, IP and
user agent). "Call patient" bridges them from the clinic's number (``<Dial callerId>``) and is logged on the
incident and as an outbound voice row in the patient's timeline.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from conversations.models import Channel, Direction
from conversations.services import interaction_set_metadata, session_open
from escalation.models import AckToken, EscalationSettings, Incident, PortalAccess, PortalCode
from escalation.services.messages import ack_token_lookup, bridge_twiml, tenant_number
from escalation.services.responders import patient_number
from providers import ProviderError
from providers.sms import get_sms_backend
from providers.voice import get_voice_backend

CODE_TTL = timedelta(minutes=10)
CODE_TRIES = 5
RESEND_AFTER = timedelta(seconds=30)
COOKIE = "cs_portal"
_SALT = "escalation.portal"


class Gate(enum.Enum):
    OPEN = "open"  # proof given: show the incident
    PROVE = "prove"  # genuine and acknowledged by this responder: ask for the code
    NOT_ACKED = "not_acked"  # acknowledge first (or someone else did): no PHI
    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass
class Portal:
    gate: Gate
    token: AckToken | None = None

    @property
    def incident(self) -> Incident | None:
        return self.token.incident if self.token else None


def _ttl(token: AckToken) -> timedelta:
    config = EscalationSettings.objects.filter(tenant_id=token.tenant_id).first()
    return timedelta(seconds=config.portal_ttl_seconds if config else 12 * 3600)


def portal_open(*, raw: str, cookie: str = "", user=None, now: datetime | None = None) -> Portal:
    """Which gate a request for ``/a/<raw>/portal`` stands at (reads only)."""
    now = now or timezone.now()
    token = ack_token_lookup(raw)
    if token is None or token.tenant_id != token.incident.tenant_id or token.tenant_id != token.responder.tenant_id:
        return Portal(Gate.INVALID)
    if now >= token.created_at + _ttl(token):
        return Portal(Gate.EXPIRED, token)
    incident = token.incident
    if incident.status != Incident.Status.ACKNOWLEDGED or incident.acknowledged_by_id != token.responder_id:
        return Portal(Gate.NOT_ACKED, token)
    if _cookie_ok(token, cookie) or _staff_ok(token, user):
        return Portal(Gate.OPEN, token)
    return Portal(Gate.PROVE, token)


def _staff_ok(token: AckToken, user) -> bool:
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and getattr(getattr(user, "responder", None), "pk", None) == token.responder_id
    )


def _cookie_ok(token: AckToken, cookie: str) -> bool:
    if not cookie:
        return False
    try:
        key = signing.loads(cookie, salt=_SALT, max_age=_ttl(token))
    except signing.BadSignature:
        return False
    return hmac.compare_digest(str(key), token.key)


def portal_seconds_left(token: AckToken, now: datetime | None = None) -> int:
    """Seconds left of the link's portal lifetime (the verified-code cookie lives no longer)."""
    return max(0, int((token.created_at + _ttl(token) - (now or timezone.now())).total_seconds()))


def portal_cookie(token: AckToken) -> str:
    """The signed proof a verified code leaves (checked against the link's key and lifetime)."""
    return signing.dumps(token.key, salt=_SALT)


def _hash(token: AckToken, code: str, secret: str | None = None) -> str:
    msg = f"portal-code:{token.key}:{code}".encode()
    return hmac.new((secret or settings.SECRET_KEY).encode(), msg, hashlib.sha256).hexdigest()


def _hash_matches(token: AckToken, code: str, stored: str) -> bool:
    """``stored`` is ``code``'s hash under SECRET_KEY or a SECRET_KEY_FALLBACKS key (a code sent before a rotation)."""
    secrets_ = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return any(hmac.compare_digest(stored, _hash(token, code, secret)) for secret in secrets_)


def _record(portal: Portal, action: str, meta: dict, user=None, detail: str = "") -> None:
    token = portal.token
    assert token is not None
    PortalAccess.objects.create(
        tenant_id=token.tenant_id,
        incident_id=token.incident_id,
        responder_id=token.responder_id,
        user=user if user is not None and user.is_authenticated else None,
        action=action,
        at=timezone.now(),
        ip=meta.get("ip") or None,
        user_agent=(meta.get("user_agent") or "")[:200],
        detail=detail[:100],
    )


def portal_code_send(*, portal: Portal, meta: dict, now: datetime | None = None) -> bool:
    """Text a fresh code to the responder (False if one went out less than 30 s ago, or the send failed)."""
    now = now or timezone.now()
    token = portal.token
    assert token is not None and portal.gate is Gate.PROVE
    with transaction.atomic():
        AckToken.objects.select_for_update().filter(pk=token.pk).first()  # one sender at a time per link
        if PortalCode.objects.filter(token=token, created_at__gt=now - RESEND_AFTER).exists():
            return False
        code = f"{secrets.randbelow(10**6):06d}"
        PortalCode.objects.create(token=token, code_hash=_hash(token, code), created_at=now, expires_at=now + CODE_TTL)
    tenant = token.tenant
    body = f"{tenant.short_name} code: {code}. It expires in 10 minutes. Never share it."
    try:
        get_sms_backend().send(tenant=tenant, from_=tenant_number(tenant), to=token.responder.phone, body=body)
    except ProviderError:
        return False
    _record(portal, PortalAccess.Action.CODE_SENT, meta)
    return True


def portal_code_verify(*, portal: Portal, code: str, meta: dict, now: datetime | None = None) -> bool:
    """True (and the code used up) if ``code`` is the newest live code of this link; a wrong try counts."""
    now = now or timezone.now()
    token = portal.token
    assert token is not None and portal.gate is Gate.PROVE
    with transaction.atomic():
        current = (
            PortalCode.objects.select_for_update()
            .filter(token=token, used_at__isnull=True, expires_at__gt=now, failures__lt=CODE_TRIES)
            .order_by("-created_at")
            .first()
        )
        ok = current is not None and _hash_matches(token, (code or "").strip(), current.code_hash)
        if current is not None:
            if ok:
                current.used_at = now
                current.save(update_fields=["used_at"])
            else:
                current.failures += 1
                current.save(update_fields=["failures"])
    _record(portal, PortalAccess.Action.VERIFIED if ok else PortalAccess.Action.CODE_FAILED, meta)
    return ok


def portal_view(*, portal: Portal, meta: dict, user=None) -> dict:
    """What the open portal shows (recorded as a view): level, red-flag category, the patient's first name and
    number, the triggering interaction's transcript, the clinic's notes."""
    assert portal.gate is Gate.OPEN and portal.token is not None
    incident = Incident.objects.select_related("customer", "interaction", "tenant").get(pk=portal.token.incident_id)
    _record(portal, PortalAccess.Action.VIEW, meta, user)
    name = (incident.customer.display_name if incident.customer else "").split()
    transcript = incident.interaction.transcript if incident.interaction else []
    return {
        "incident": incident,
        "first_name": name[0] if name else "",
        "phone": patient_number(incident),
        "transcript": [t for t in transcript if isinstance(t, dict)][-50:],
        "notes": incident.resolution_note,
    }


def portal_call_patient(*, portal: Portal, meta: dict, user=None) -> str:
    """Call the responder and, once they answer, ``<Dial>`` the patient with the clinic's number as caller id.
    Returns the call's SID ("" if no number or the provider refused). Logged on the incident (``PortalAccess``)
    and as an outbound voice row in the patient's timeline."""
    assert portal.gate is Gate.OPEN and portal.token is not None
    incident = Incident.objects.select_related("tenant", "customer").get(pk=portal.token.incident_id)
    phone = patient_number(incident)
    if not phone:
        return ""
    tenant = incident.tenant
    clinic = tenant_number(tenant)
    try:
        call = get_voice_backend().place_call(
            tenant=tenant,
            from_=clinic,
            to=portal.token.responder.phone,
            twiml=bridge_twiml(tenant=tenant, caller_id=clinic, patient=phone),
        )
    except ProviderError:
        return ""
    _record(portal, PortalAccess.Action.CALL, meta, user, detail=call.sid)
    if incident.customer is not None:
        row, _ = session_open(
            tenant=tenant, customer=incident.customer, channel=Channel.VOICE, direction=Direction.OUTBOUND
        )
        interaction_set_metadata(
            interaction=row,
            updates={
                "bridge_call_sids": [*row.metadata.get("bridge_call_sids", []), call.sid],
                "incident": str(incident.pk),
            },
        )
    return call.sid


def portal_resolve(*, portal: Portal, note: str, meta: dict, user=None) -> bool:
    """Resolve the incident with ``note`` from the portal (as the link's responder)."""
    from escalation.services.incidents import incident_resolve

    assert portal.gate is Gate.OPEN and portal.token is not None
    incident = Incident.objects.get(pk=portal.token.incident_id)
    done = incident_resolve(incident=incident, note=note, via=Incident.AckVia.LINK, responder=portal.token.responder)
    _record(portal, PortalAccess.Action.RESOLVE, meta, user)
    return done
