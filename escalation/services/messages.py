"""What a page says and links to: SMS text, spoken texts, call URLs and TwiML, and acknowledge-link tokens.

Minimal PHI (DESIGN.md "Habits"): the texts are built from the clinic's short name, the word "urgent", a
callback number and the ack link only. Templates are per tenant (``EscalationSettings``) and may reference
``{clinic}``, ``{callback}`` and ``{link}`` — nothing else is offered to them, so no template can leak a
patient's name, date of birth or symptom.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from twilio.twiml.voice_response import VoiceResponse

from escalation.models import (
    DEFAULT_SMS_TEMPLATE,
    DEFAULT_VOICE_TEMPLATE,
    AckToken,
    EscalationSettings,
    Incident,
    NotificationAttempt,
)
from identity.keys import signing_key, verifying_keys
from identity.models import Tenant, TenantPhoneNumber
from providers import ProviderError
from providers.sms import get_sms_backend

TEMPLATE_FIELDS = frozenset({"clinic", "callback", "link"})


def _safe_format(template: str, fallback: str, values: dict[str, str]) -> str:
    """``template.format(**values)`` if it uses only plain ``{name}`` fields of ``values``, else ``fallback``'s.

    Attribute and index lookups (``{clinic.__class__}``) and unknown names are refused, so a template edited
    in admin can neither fail a page nor reach anything but the three allowed values.
    """
    try:
        names = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
        if names <= set(values) and all(n.isidentifier() for n in names):
            return template.format(**values)
    except (ValueError, KeyError, IndexError):
        pass
    return fallback.format(**values)


def tenant_number(tenant: Tenant) -> str:
    """The tenant's first phone number (E.164): ``From`` of every page. Raises ValueError if it has none."""
    number = TenantPhoneNumber.objects.filter(tenant=tenant).order_by("id").values_list("number", flat=True).first()
    if not number:
        raise ValueError(f"tenant {tenant.slug} has no phone number")
    return number


def callback_number(tenant: Tenant, config: EscalationSettings | None) -> str:
    """The number responders are told to call back: the configured one, else the tenant's own."""
    return (config.callback_number if config and config.callback_number else "") or tenant_number(tenant)


def sms_text(*, tenant: Tenant, config: EscalationSettings | None, link: str) -> str:
    """The page SMS, e.g. ``"Sunrise Clinic: URGENT patient message … Ack: https://…/a/…"``."""
    values = {"clinic": tenant.short_name, "callback": callback_number(tenant, config), "link": link}
    return _safe_format(config.sms_template if config else DEFAULT_SMS_TEMPLATE, DEFAULT_SMS_TEMPLATE, values)


def _spoken(number: str) -> str:
    """An E.164 number as text-to-speech should say it: digit by digit (``"1 5 5 5 …"``)."""
    return " ".join(number.lstrip("+"))


def voice_text(*, tenant: Tenant, config: EscalationSettings | None) -> str:
    """What the call says before "press 1"; the callback number is spoken digit by digit."""
    values = {"clinic": tenant.short_name, "callback": _spoken(callback_number(tenant, config)), "link": ""}
    return _safe_format(config.voice_template if config else DEFAULT_VOICE_TEMPLATE, DEFAULT_VOICE_TEMPLATE, values)


# --- acknowledge links ----------------------------------------------------------------------------------


def _mac(token: AckToken, secret: str | None = None) -> str:
    """The link's MAC under ``secret`` (default ``SECRET_KEY``, which signs every new link)."""
    msg = "|".join(
        str(x) for x in (token.key, token.tenant_id, token.incident_id, token.attempt_id, token.responder_id)
    ).encode()
    key = (secret if secret is not None else settings.SECRET_KEY).encode()
    digest = hmac.new(key, b"escalation-ack:" + msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode().rstrip("=")


def ack_token_create(*, attempt: NotificationAttempt, ttl_seconds: int, at: datetime) -> AckToken:
    """A fresh ack token for an SMS attempt, bound to its tenant, incident, attempt and responder."""
    return AckToken.objects.create(
        key=secrets.token_urlsafe(9)[:12],
        tenant_id=attempt.tenant_id,
        incident_id=attempt.incident_id,
        attempt=attempt,
        responder_id=attempt.responder_id,
        created_at=at,
        expires_at=at + timedelta(seconds=ttl_seconds),
    )


def ack_token_string(token: AckToken) -> str:
    """The secret string in the link: ``<key>.<mac>`` (about 29 URL-safe characters), or ``<key>.<mac>.<kid>``
    when ``LINK_SIGNING_KEYS`` names the key (identity.keys)."""
    kid, secret = signing_key()
    return f"{token.key}.{_mac(token, secret)}" + (f".{kid}" if kid else "")


def ack_link(token: AckToken) -> str:
    """The absolute link sent by SMS: ``PUBLIC_BASE_URL/a/<key>.<mac>``."""
    return settings.PUBLIC_BASE_URL + reverse("escalation-ack", args=[ack_token_string(token)])


def ack_token_lookup(raw: str, *, for_update: bool = False) -> AckToken | None:
    """The token row for a link string if its MAC is genuine (constant-time compare) under the key its kid names,
    or — a link without a kid — under ``SECRET_KEY`` or one of ``SECRET_KEY_FALLBACKS`` (links sent before a
    rotation keep working), else None.

    Expiry and single use are checked by the caller, which must say why a genuine token is refused.
    ``for_update`` locks the row (use inside a transaction).
    """
    key, _, signed = (raw or "").partition(".")
    mac, _, kid = signed.partition(".")
    if not key or not mac or len(key) > 16:
        return None
    qs = AckToken.objects.select_related("incident", "responder", "tenant", "attempt")
    if for_update:
        qs = qs.select_for_update(of=("self",))
    token = qs.filter(key=key).first()
    secrets_ = verifying_keys(kid)  # the key the link names, or SECRET_KEY and its fallbacks for a kid-less link
    if token is None or not any(hmac.compare_digest(_mac(token, secret), mac) for secret in secrets_):
        return None
    return token


# --- calls ------------------------------------------------------------------------------------------------


def call_url(attempt_id: int, name: str = "escalation-call") -> str:
    """Absolute URL of one of our call webhooks for an attempt (what Twilio requests and signs). The default,
    ``escalation-call``, is the ``Url`` every page call is placed with: Twilio requests it once the call is
    answered and answering-machine detection has decided (``AnsweredBy``), and it returns the live prompt."""
    return settings.PUBLIC_BASE_URL + reverse(name, args=[attempt_id])


def call_prompt_twiml(*, tenant: Tenant, config: EscalationSettings | None, attempt_id: int, round_: int = 1) -> str:
    """``<Gather numDigits="1">`` saying the page twice; digits go to the gather webhook. No key → goodbye."""
    response = VoiceResponse()
    gather = response.gather(
        num_digits=1,
        action=call_url(attempt_id, "escalation-call-gather") + f"?round={round_}",
        method="POST",
        timeout=6,
    )
    text = voice_text(tenant=tenant, config=config) + " Press 2 to be connected to the patient."
    gather.say(text)
    gather.pause(length=1)
    gather.say(text)
    response.say("No key was pressed. This page is not acknowledged. Goodbye.")
    response.hangup()
    return str(response)


def call_acknowledged_text(tenant: Tenant) -> str:
    """Said to the responder whose own acknowledgement stopped the page (a keypress, or earlier by SMS)."""
    return f"Acknowledged. Thank you. Please call {tenant.short_name} back now. Goodbye."


def call_colleague_acknowledged_text(tenant: Tenant) -> str:
    """Said to a responder answering (or pressing 1) after someone else acknowledged: nothing left to do."""
    return (
        f"This is {tenant.short_name}. This urgent page was already acknowledged by a colleague. "
        "No action is needed from you. Thank you. Goodbye."
    )


def call_unacknowledged_text(tenant: Tenant, config: EscalationSettings | None) -> str:
    """Said on a page call answered after the ladder ran out (``unacknowledged``): nobody has acknowledged,
    so the responder is asked to call the clinic's callback number (spoken digit by digit) now."""
    try:
        number = f" on {_spoken(callback_number(tenant, config))}"
    except ValueError:  # the tenant has no number left: still say what to do
        number = ""
    return (
        f"This is {tenant.short_name}. No one has acknowledged this urgent page yet. "
        f"Please call the clinic now{number}. Goodbye."
    )


def call_simple_twiml(text: str) -> str:
    """TwiML that says ``text`` and hangs up."""
    response = VoiceResponse()
    response.say(text)
    response.hangup()
    return str(response)


def attempt_sms_body(attempt: NotificationAttempt, config: EscalationSettings | None) -> str:
    """The exact body of an SMS attempt (deterministic: re-rendered to reconcile with ``find_recent``)."""
    return sms_text(tenant=attempt.tenant, config=config, link=ack_link(attempt.ack_token))


def call_hangup_twiml() -> str:
    """TwiML that hangs up at once (an answering machine or fax gets no message and no details)."""
    response = VoiceResponse()
    response.hangup()
    return str(response)


# --- a responder calling the clinic line ------------------------------------------------------------------


def responder_menu_twiml(*, tenant: Tenant, incident: Incident | None, again: bool = False, outcome: str = "") -> str:
    """What a responder hears on calling the clinic line (no PHI). No page for them: say so, hang up. An open
    page: ``<Gather numDigits="1">`` "press 1 to acknowledge, 2 to be connected to the patient" (after their
    acknowledgement: "press 2"); ``outcome`` ``already`` / ``no_number``: say what happened, hang up."""
    response = VoiceResponse()
    clinic = tenant.short_name
    if incident is None:
        response.say(f"This is the automated line of {clinic}. No urgent page is open for you. Goodbye.")
        response.hangup()
        return str(response)
    if outcome == "already":
        response.say(f"This is {clinic}. This page was already acknowledged by a colleague. No action is needed.")
        response.hangup()
        return str(response)
    if outcome == "no_number":
        response.say("Acknowledged. No patient phone number is on file. Please see the incident in admin. Goodbye.")
        response.hangup()
        return str(response)
    action = settings.PUBLIC_BASE_URL + reverse("escalation-responder-key", args=[incident.pk])
    gather = response.gather(num_digits=1, action=action, method="POST", timeout=6)
    if outcome == "ack":
        gather.say("Acknowledged. Nobody else will be paged. Press 2 to be connected to the patient, or hang up.")
    else:
        prefix = "Please press 1 or 2. " if again else f"This is {clinic}. An urgent page is open. "
        gather.say(prefix + "Press 1 to acknowledge, 2 to be connected to the patient.")
    response.say("Goodbye.")
    response.hangup()
    return str(response)


def bridge_twiml(*, tenant: Tenant, caller_id: str, patient: str) -> str:
    """Connect the responder on the line to the patient, showing the clinic's number (``callerId``), never theirs."""
    response = VoiceResponse()
    response.say(f"This is {tenant.short_name}. Connecting you to the patient.")
    dial = response.dial(caller_id=caller_id, timeout=30)
    dial.number(patient)
    response.say("The call with the patient has ended. Goodbye.")
    response.hangup()
    return str(response)


def claimed_text_send(
    *,
    row: QuerySet,
    tenant: Tenant,
    from_: str,
    to: str,
    body: str,
    on_error: Callable[[ProviderError], None],
    **also: object,
) -> bool:
    """The act and record of a claimed text (:mod:`identity.leases`; the claim is the caller's row): send
    ``body``; on success write ``sent_at`` / ``provider_sid`` (and ``also``) to ``row`` (a one-row queryset; not fenced: the
    text went out) and return True; on a :class:`ProviderError` call ``on_error(exc)`` (which records it, fenced
    where the claim can be taken over) and return False."""
    try:
        sent = get_sms_backend().send(tenant=tenant, from_=from_, to=to, body=body)
    except ProviderError as exc:
        on_error(exc)
        return False
    row.update(sent_at=timezone.now(), provider_sid=sent.sid, **also)
    return True
