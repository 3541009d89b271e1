"""Proving possession before a chat visitor is bound to an existing customer.

A phone number or email typed into the widget is only a claim: anyone can type anyone's number. When the
identifier already belongs to a customer (other than the one this browser is already), the visitor is sent a
one-time 6-digit code on that channel (SMS to the phone, an email to the address) and stays anonymous until
they type it back. Only then does the browser's visitor id join that customer, so the agent never reveals a
pending booking or an appointment time to — or lets a stranger cancel it for — someone who merely knows the
number. This is the verification step of NIST SP 800-63B §5.1.3 ("out-of-band devices"), reduced to what a
front desk needs: codes live 10 minutes, are stored only as an HMAC in the cache (Redis), allow 5 tries, and a
visitor may ask for at most 3 codes an hour. A new identifier (nobody's yet) needs no code: there is nothing
to leak, and it is attached as unverified.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail

from identity.models import Customer, CustomerIdentifier, IdentifierKind, Tenant

logger = logging.getLogger(__name__)

CODE_TTL_SECONDS = 600
MAX_TRIES = 5
MAX_CODES_PER_HOUR = 3
_CODE = re.compile(r"^\s*(\d{6})\s*$")


@dataclass
class Claim:
    """An identifier typed in chat that belongs to ``owner``, another customer than the session's."""

    kind: str
    value: str
    owner: Customer


def _key(tenant: Tenant, visitor: str) -> str:
    return f"chat-verify:{tenant.pk}:{visitor}"


def _digest(code: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), code.encode(), hashlib.sha256).hexdigest()


def _mask(kind: str, value: str) -> str:
    if kind == IdentifierKind.PHONE:
        return f"the number ending in {value[-2:]}"
    local, _, domain = value.partition("@")
    return f"{local[:1]}…@{domain}"


def claim_needing_proof(*, tenant: Tenant, current: Customer | None, given: dict[str, str]) -> Claim | None:
    """The first of ``given`` (``{"phone"|"email": normalised value}``, phone first) that belongs to a customer
    other than ``current`` — i.e. a claim that must be proven before the session switches to that customer."""
    for kind in (IdentifierKind.PHONE, IdentifierKind.EMAIL):
        value = given.get(kind.value)
        if not value:
            continue
        ident = CustomerIdentifier.objects.select_related("customer").filter(
            tenant=tenant, kind=kind, value=value).first()
        if ident and (current is None or ident.customer_id != current.pk):
            return Claim(kind=kind.value, value=value, owner=ident.customer)
    return None


def challenge_start(*, tenant: Tenant, visitor: str, claim: Claim) -> str:
    """Send a one-time code to the claimed phone (SMS) or email and return the chat reply that asks for it.

    At most ``MAX_CODES_PER_HOUR`` codes per visitor; past that the reply says so and nothing is sent.
    """
    sent_key = f"chat-verify-sent:{tenant.pk}:{visitor}"
    cache.add(sent_key, 0, 3600)
    if cache.incr(sent_key) > MAX_CODES_PER_HOUR:
        return "I've already sent several codes. Please try again in an hour, or call the clinic."
    code = f"{secrets.randbelow(10**6):06d}"
    cache.set(_key(tenant, visitor), {"kind": claim.kind, "value": claim.value, "customer": str(claim.owner.pk),
                                      "digest": _digest(code), "tries": 0,
                                      "expires": time.time() + CODE_TTL_SECONDS}, CODE_TTL_SECONDS)
    text = (f"{tenant.short_name}: your chat verification code is {code}. It expires in 10 minutes. "
            "If you did not ask for it, ignore this message.")
    if claim.kind == IdentifierKind.PHONE:
        from channels_app.sms.services import sms_send

        sms_send(tenant=tenant, customer=claim.owner, to=claim.value, body=text,
                 idempotency_key=f"chat-verify:{visitor}:{uuid.uuid4().hex}")
    else:
        send_mail(f"{tenant.short_name} verification code", text, settings.DEFAULT_FROM_EMAIL, [claim.value])
    logger.info("chat verification code sent by %s for visitor %s", claim.kind, visitor[:6])
    return (f"To keep your information private, I've sent a 6-digit code to {_mask(claim.kind, claim.value)}. "
            "Please type it here to continue.")


@dataclass
class Answer:
    """Outcome of :func:`challenge_answer`: the proven ``customer`` and identifier, or a ``reply`` to send."""

    customer: Customer | None = None
    kind: str = ""
    value: str = ""
    reply: str = ""


def challenge_answer(*, tenant: Tenant, visitor: str, text: str) -> Answer | None:
    """Check ``text`` against the visitor's pending code; None when no code is pending or ``text`` is no code.

    A right code (constant-time compare) is single-use and returns the customer; a wrong one counts a try,
    and after ``MAX_TRIES`` the code is void.
    """
    match = _CODE.match(text or "")
    pending = cache.get(_key(tenant, visitor)) if match else None
    if not pending:
        return None
    if hmac.compare_digest(_digest(match.group(1)), pending["digest"]):
        cache.delete(_key(tenant, visitor))
        customer = Customer.objects.filter(pk=pending["customer"], tenant=tenant).first()
        if customer is None:
            return Answer(reply="Sorry, I couldn't confirm that. Please tell me your number again.")
        return Answer(customer=customer, kind=pending["kind"], value=pending["value"])
    pending["tries"] += 1
    if pending["tries"] >= MAX_TRIES:
        cache.delete(_key(tenant, visitor))
        return Answer(reply="That code didn't match too many times. Tell me your number again for a new code.")
    cache.set(_key(tenant, visitor), pending, max(1, int(pending["expires"] - time.time())))  # no extension
    return Answer(reply="That code doesn't match. Please check the message and try again.")
