"""Proving possession of a phone number or email typed in chat, before the chat may use it.

A phone number or email typed into the widget is only a claim: anyone can type anyone's number. Unless it is
already a verified identifier of the customer this browser is, the visitor is sent a one-time 6-digit code on
that channel (SMS to the phone, an email to the address) and the identifier is not used until they type the
code back. Then, if it belongs to a customer, the browser's visitor key joins that customer (so the agent never
reveals a pending booking or an appointment time to — or lets a stranger cancel it for — someone who merely
knows the number); if it is nobody's yet, it is attached to the visitor's customer. Either way it is stored as
``verified``: only verified numbers are ever texted or called back (:mod:`conversations.agent.tools`,
:mod:`channels_app.voice.callback`), so chat cannot be used to make us text or call a stranger.

The reply is the same sentence whether or not the identifier is on file (:func:`challenge_start`), so the widget
does not tell who is a patient. This is the verification step of NIST SP 800-63B §5.1.3 ("out-of-band
devices"), reduced to what a front desk needs: codes live 10 minutes, are stored only as an HMAC in the cache
(Redis) under the visitor key (:mod:`channels_app.chat.visitors`), allow 5 tries, and at most
``MAX_CODES_PER_HOUR`` (3) are sent per visitor, ``CHAT_VERIFY_CODES_PER_TARGET_HOUR`` (default 3) per phone or
email of a tenant, and ``CHAT_VERIFY_CODES_PER_TENANT_HOUR`` (default 100) per tenant (one-hour fixed windows,
:mod:`channels_app.chat.limits`): visitor ids are free to make, so the last two bound SMS
pumping and harassment.
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
from django.utils.crypto import salted_hmac

from channels_app.chat.limits import Limit, limits_hit
from identity.models import Customer, CustomerIdentifier, IdentifierKind, Tenant

logger = logging.getLogger(__name__)

CODE_TTL_SECONDS = 600
MAX_TRIES = 5
TOO_MANY_TRIES = "That code didn't match too many times. Tell me your number again for a new code."
MAX_CODES_PER_HOUR = 3
HOUR = 3600
_CODE = re.compile(r"^\s*(\d{6})\s*$")

SENT = {
    IdentifierKind.PHONE.value: "Thanks — we've texted a 6-digit code to that number (if it can receive texts). "
    "Type it here to confirm it's yours, or just keep chatting.",
    IdentifierKind.EMAIL.value: "Thanks — we've emailed a 6-digit code to that address. "
    "Type it here to confirm it's yours, or just keep chatting.",
}
TOO_MANY = "I've already sent several codes. Please try again in an hour, or call the clinic."
BUSY = "I can't send a code right now. Please try again later, or call the clinic."
CONFIRMED = {
    IdentifierKind.PHONE.value: "Thanks — your number is confirmed. How can I help?",
    IdentifierKind.EMAIL.value: "Thanks — your email address is confirmed. How can I help?",
}


@dataclass
class Claim:
    """An identifier typed in chat that is not (yet) a verified identifier of the session's customer.

    ``owner`` is the customer it belongs to, or None when it is nobody's yet.
    """

    kind: str
    value: str
    owner: Customer | None = None


def per_target_limit() -> int:
    """Codes per hour to one phone or email of a tenant (``CHAT_VERIFY_CODES_PER_TARGET_HOUR``, default 3)."""
    return int(getattr(settings, "CHAT_VERIFY_CODES_PER_TARGET_HOUR", 3))


def per_tenant_limit() -> int:
    """Codes per hour for a whole tenant (``CHAT_VERIFY_CODES_PER_TENANT_HOUR``, default 100)."""
    return int(getattr(settings, "CHAT_VERIFY_CODES_PER_TENANT_HOUR", 100))


def _key(tenant: Tenant, visitor_key: str) -> str:
    return f"chat-verify:{tenant.pk}:{visitor_key}"


def _digest(code: str, secret: str | None = None) -> str:
    return hmac.new((secret or settings.SECRET_KEY).encode(), code.encode(), hashlib.sha256).hexdigest()


def _digest_matches(code: str, stored: str) -> bool:
    """``stored`` is ``code``'s digest under SECRET_KEY or a SECRET_KEY_FALLBACKS key (sent before a rotation)."""
    return any(
        hmac.compare_digest(_digest(code, secret), stored)
        for secret in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    )


def _target_ref(kind: str, value: str) -> str:
    """A phone or email as it appears in cache keys: keyed hash, never the number itself."""
    return salted_hmac("callsphere.chat.verify.target", f"{kind}:{value}", algorithm="sha256").hexdigest()[:32]


def claim_needing_proof(*, tenant: Tenant, current: Customer | None, given: dict[str, str]) -> Claim | None:
    """The first of ``given`` (``{"phone"|"email": normalised value}``, phone first) that is not already a
    verified identifier of ``current`` — one of someone else's, nobody's yet, or ``current``'s but unverified —
    i.e. a claim to prove before the chat uses it. None when every one given is already proven."""
    for kind in (IdentifierKind.PHONE, IdentifierKind.EMAIL):
        value = given.get(kind.value)
        if not value:
            continue
        ident = (
            CustomerIdentifier.objects.select_related("customer").filter(tenant=tenant, kind=kind, value=value).first()
        )
        if ident and current is not None and ident.customer_id == current.pk and ident.verified:
            continue
        return Claim(kind=kind.value, value=value, owner=ident.customer if ident else None)
    return None


def _refusal(tenant: Tenant, visitor_key: str, claim: Claim) -> str | None:
    """Count one code against the visitor's, the target's and the tenant's hourly windows, in that order
    (a refused code is not counted further on); the reply when one is full, else None."""
    target = f"chat-verify-target:{tenant.pk}:{_target_ref(claim.kind, claim.value)}"
    full = limits_hit(
        Limit(f"chat-verify-sent:{tenant.pk}:{visitor_key}", MAX_CODES_PER_HOUR, HOUR),
        Limit(target, per_target_limit(), HOUR),
        Limit(f"chat-verify-tenant:{tenant.pk}", per_tenant_limit(), HOUR),
    )
    if full is None:
        return None
    if full[0].key.startswith("chat-verify-tenant:"):
        logger.warning("chat verification codes: tenant %s reached its hourly limit", tenant.pk)
        return BUSY
    return TOO_MANY


def challenge_start(*, tenant: Tenant, visitor_key: str, claim: Claim, customer: Customer) -> str:
    """Send a one-time code to the claimed phone (SMS) or email and return the chat reply that asks for it.

    The reply is one fixed sentence per kind, the same whether or not the identifier is on file. The SMS is
    recorded in the owner's timeline, or in ``customer``'s (the visitor's) when the number is nobody's yet.
    Past a limit (see the module docstring) the reply says so and nothing is sent.
    """
    if refused := _refusal(tenant, visitor_key, claim):
        return refused
    code = f"{secrets.randbelow(10**6):06d}"
    cache.set(
        _key(tenant, visitor_key),
        {
            "kind": claim.kind,
            "value": claim.value,
            "digest": _digest(code),
            "id": uuid.uuid4().hex,
            "expires": time.time() + CODE_TTL_SECONDS,
        },
        CODE_TTL_SECONDS,
    )
    text = (
        f"{tenant.short_name}: your chat verification code is {code}. It expires in 10 minutes. "
        "If you did not ask for it, ignore this message."
    )
    if claim.kind == IdentifierKind.PHONE:
        from channels_app.sms.services import sms_send

        sms_send(
            tenant=tenant,
            customer=claim.owner or customer,
            to=claim.value,
            body=text,
            idempotency_key=f"chat-verify:{visitor_key}:{uuid.uuid4().hex}",
            transcript_text=text.replace(code, "[code]"),
        )  # the transcript is exported; the code never is
    else:
        send_mail(f"{tenant.short_name} verification code", text, settings.DEFAULT_FROM_EMAIL, [claim.value])
    logger.info("chat verification code sent by %s for visitor %s", claim.kind, visitor_key[:8])
    return SENT[claim.kind]


@dataclass
class Answer:
    """Outcome of :func:`challenge_answer`: ``proven`` with the identifier (``kind``, ``value``) and its current
    ``owner`` (None: nobody's yet), or a ``reply`` to send."""

    proven: bool = False
    kind: str = ""
    value: str = ""
    owner: Customer | None = None
    reply: str = ""


def challenge_answer(*, tenant: Tenant, visitor_key: str, text: str) -> Answer | None:
    """Check ``text`` against the visitor's pending code; None when no code is pending or ``text`` is no code.

    A right code (constant-time compare) is single-use and proves the identifier; a wrong one counts a try, and
    after ``MAX_TRIES`` the code is void.
    """
    match = _CODE.match(text or "")
    pending = cache.get(_key(tenant, visitor_key)) if match else None
    if not pending:
        return None
    # Wrong tries are counted with an atomic increment on a key of their own (one per code), not in the pending
    # entry: parallel guesses over several sockets would each read and write back the same count.
    tries_key = f"{_key(tenant, visitor_key)}:tries:{pending.get('id', '')}"
    if (cache.get(tries_key) or 0) >= MAX_TRIES:
        cache.delete(_key(tenant, visitor_key))
        return Answer(reply=TOO_MANY_TRIES)
    if _digest_matches(match.group(1), pending["digest"]):
        cache.delete(_key(tenant, visitor_key))
        ident = (
            CustomerIdentifier.objects.select_related("customer")
            .filter(tenant=tenant, kind=pending["kind"], value=pending["value"])
            .first()
        )
        return Answer(
            proven=True, kind=pending["kind"], value=pending["value"], owner=ident.customer if ident else None
        )
    cache.add(tries_key, 0, CODE_TTL_SECONDS)
    if cache.incr(tries_key) >= MAX_TRIES:
        cache.delete(_key(tenant, visitor_key))
        return Answer(reply=TOO_MANY_TRIES)
    return Answer(reply="That code doesn't match. Please check the message and try again.")
