"""The chat channel's writes: open a chat session from a ``hello``, record a message and answer it.

Identity: the browser's visitor id is the ``cookie`` identifier. A signed chat link identifies the customer
at ``hello``; otherwise a phone number or email typed in chat resolves to the existing customer (identity
priority phone > email > cookie) once the visitor has typed back the one-time code sent to it
(:mod:`channels_app.chat.verification`). An unknown visitor creates nothing until they write. One chat
session is one ``call_logs`` row (channel ``chat``) in the customer's open conversation, closed by the idle sweeper.

Frames returned here are the server side of the protocol documented in :mod:`channels_app.chat.consumer`;
every transcript turn carries ``seq`` (its index in the row's transcript) so a reconnecting widget asks for
``seq > last_seq`` and never shows a turn twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from channels_app.chat import verification
from channels_app.chat.links import InvalidLink, chat_link_claim
from conversations import engine
from conversations.agent.backends.local import detect_intent
from conversations.agent.dates import parse_when
from conversations.models import Channel, Interaction
from conversations.services import (
    interaction_append_turn,
    interaction_close,
    interaction_set_metadata,
    message_receive,
    session_open,
)
from identity.models import KIND_PRIORITY, Customer, CustomerIdentifier, IdentifierKind, Tenant
from identity.normalize import normalize_email, normalize_phone
from identity.services import customer_merge, customer_resolve

logger = logging.getLogger(__name__)

VISITOR_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?\d[\d\s().-]{7,}\d")


class ChatError(ValueError):
    """A frame the protocol refuses; ``code`` goes to the client in an ``error`` frame."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class ChatSession:
    """Server-side state of one websocket connection."""

    tenant: Tenant
    visitor: str
    customer: Customer | None = None
    interaction: Interaction | None = None
    identified_by: str = ""
    extra: dict = field(default_factory=dict)


def _frame(interaction: Interaction, seq: int) -> dict:
    turn = interaction.transcript[seq]
    if turn.get("role") == "customer":
        return {"type": "message", "seq": seq, "id": turn.get("client_id", ""), "text": turn.get("text", "")}
    return {"type": "reply", "seq": seq, "role": turn.get("role", "agent"), "text": turn.get("text", "")}


def replay(interaction: Interaction, last_seq: int) -> list[dict]:
    """Frames for the transcript turns after ``last_seq`` (customer, agent and staff turns)."""
    return [_frame(interaction, i) for i in range(max(last_seq + 1, 0), len(interaction.transcript))
            if interaction.transcript[i].get("role") in ("customer", "agent", "staff")]


def _open(session: ChatSession, *, greet: bool, anonymous_before: bool = False) -> list[dict]:
    interaction, created = session_open(
        tenant=session.tenant, customer=session.customer, channel=Channel.CHAT,
        idle_window=session.tenant.sms_idle_window,
        metadata={"visitor": session.visitor, "identified_by": session.identified_by},
    )
    if not created and interaction.metadata.get("identified_by") != session.identified_by and session.identified_by:
        interaction_set_metadata(interaction=interaction, updates={"identified_by": session.identified_by})
    session.interaction = interaction
    if created and greet:
        reply = engine.greet(interaction=interaction)
        interaction_append_turn(interaction=interaction, role="agent", text=reply.text, kind="greeting")
    return []


def chat_hello(*, tenant: Tenant, visitor: str, link: str = "", last_seq: int = -1) -> tuple[ChatSession, list[dict]]:
    """Start a connection: identify the visitor (link token, else a known visitor id) and replay the session.

    Returns the session and the frames to send: ``hello`` then the turns after ``last_seq`` (for a new
    session that includes the continuity greeting), or for an unknown visitor a greeting without ``seq``.
    Raises :class:`ChatError` (``bad_visitor``, ``link_invalid``, ``link_expired``, ``link_used``).
    """
    if not VISITOR_RE.match(visitor or ""):
        raise ChatError("bad_visitor", "visitor must be 16-64 characters of [A-Za-z0-9_-]")
    session = ChatSession(tenant=tenant, visitor=visitor)
    if link:
        try:
            customer = chat_link_claim(link, tenant=tenant, visitor=visitor)
        except InvalidLink as exc:
            code = "link_expired" if "expired" in str(exc) else "link_used" if "used" in str(exc) else "link_invalid"
            raise ChatError(code, str(exc)) from None
        session.customer = _attach_visitor(tenant, customer, visitor)
        session.identified_by = "link"
    else:
        ident = CustomerIdentifier.objects.select_related("customer").filter(
            tenant=tenant, kind=IdentifierKind.COOKIE, value=visitor).first()
        if ident:
            session.customer, session.identified_by = ident.customer, "cookie"
    frames: list[dict] = []
    with transaction.atomic():
        if session.customer is not None:
            _open(session, greet=True)
    hello = {"type": "hello", "identified": session.customer is not None,
             "session": str(session.interaction.pk) if session.interaction else None}
    if session.interaction is None:
        return session, [hello, {"type": "reply", "seq": None, "role": "agent",
                                 "text": _anonymous_greeting(tenant)}]
    session.interaction.refresh_from_db(fields=["transcript"])
    frames = [hello, *replay(session.interaction, last_seq)]
    return session, frames


def _anonymous_greeting(tenant: Tenant) -> str:
    return (f"Hi! This is {tenant.short_name}. I can book, move or cancel appointments, arrange a call back or "
            "connect you with our team. If you've been in touch before, tell me your phone number or email and "
            "I'll pick up where we left off.")


def _attach_visitor(tenant: Tenant, customer: Customer, visitor: str) -> Customer:
    """Attach the visitor id to ``customer`` by resolving with their strongest identifier plus the cookie."""
    idents = {i.kind: i.value for i in CustomerIdentifier.objects.filter(customer=customer).order_by("-verified")}
    strongest = next((k for k in KIND_PRIORITY if k in idents and k != IdentifierKind.COOKIE), None)
    if strongest is None:
        return customer
    return customer_resolve(tenant=tenant, cookie=visitor, **{strongest.value: idents[strongest]}).customer


def _fold_anonymous_visitor(session: ChatSession, owner: Customer) -> None:
    """After the visitor proved ``owner``'s phone or email: fold the anonymous customer this browser was until
    now (known by its cookie alone) into ``owner``, so its cookie and its turns join the patient's history."""
    current = session.customer
    if current is None or current.pk == owner.pk:
        return
    if CustomerIdentifier.objects.filter(customer=current).exclude(kind=IdentifierKind.COOKIE).exists():
        return  # a real other customer (shared computer): switch this connection only, merge nothing
    if session.interaction is not None:
        interaction_close(interaction=session.interaction)
    customer_merge(survivor=owner, merged=current)
    session.customer, session.interaction = owner, None


def _identifiers_in(text: str, tenant: Tenant) -> dict[str, str]:
    found = {}
    if match := _EMAIL.search(text):
        if email := normalize_email(match.group(0)):
            found["email"] = email
    for match in _PHONE.finditer(text):
        if phone := normalize_phone(match.group(0), tenant.country):
            found["phone"] = phone
            break
    return found


def _only_identifies(text: str, tenant: Tenant) -> bool:
    """True if, without its phone numbers and emails, ``text`` asks for nothing (no intent, day or time)."""
    rest = _PHONE.sub(" ", _EMAIL.sub(" ", text))
    return detect_intent(rest) is None and parse_when(rest, tz=tenant.timezone, now=timezone.now()).empty


def chat_message(*, session: ChatSession, client_id: str, text: str) -> list[dict]:
    """Record the visitor's message once per ``client_id`` and answer it; returns the frames to broadcast.

    A phone or email in the text resolves the visitor to that customer (switching the session if it was
    someone else, e.g. an anonymous visitor). A repeated ``client_id`` (a resend after reconnect) records
    nothing and returns the stored turn and its reply. Raises :class:`ChatError` for a bad ``client_id``.
    """
    if not CLIENT_ID_RE.match(client_id or ""):
        raise ChatError("bad_id", "message id must be 8-64 characters of [A-Za-z0-9_-]")
    tenant = session.tenant
    given = _identifiers_in(text, tenant)
    answer = verification.challenge_answer(tenant=tenant, visitor=session.visitor, text=text)
    if answer and answer.customer:
        given = {answer.kind: answer.value}  # proven: now the identifier may bind this browser to its owner
    claim = None if (answer and answer.customer) else verification.claim_needing_proof(
        tenant=tenant, current=session.customer, given=given)
    if claim:
        given = {}  # unproven claim on someone else's identifier: stay who we are until the code comes back
    newly_identified = False
    with transaction.atomic():
        if answer and answer.customer:
            _fold_anonymous_visitor(session, answer.customer)
            newly_identified, session.identified_by = True, answer.kind
        if given or session.customer is None:
            customer = customer_resolve(tenant=tenant, cookie=session.visitor, **given).customer
            if session.customer is None or customer.pk != session.customer.pk:
                if session.interaction is not None:
                    interaction_close(interaction=session.interaction)  # that session was someone else's
                session.customer, session.interaction = customer, None
                session.identified_by = next((k for k in ("phone", "email") if k in given), "cookie")
                newly_identified = bool(given)
        if session.interaction is None or session.interaction.ended_at is not None:
            _open(session, greet=False)
        received = message_receive(
            tenant=tenant, customer=session.customer, channel=Channel.CHAT,
            provider_id=f"chat:{session.visitor}:{client_id}", sender=f"visitor:{session.visitor}",
            recipient="widget", text=text, idle_window=tenant.sms_idle_window,
            turn_extra={"client_id": client_id},
        )
    interaction = received.interaction
    session.interaction = interaction
    interaction.refresh_from_db(fields=["transcript", "ended_at"])
    mine = [i for i, t in enumerate(interaction.transcript) if t.get("client_id") == client_id]
    if received.duplicate:
        answered = [i for i, t in enumerate(interaction.transcript) if t.get("in_reply_to") == client_id]
        return [_frame(interaction, i) for i in mine + answered]
    if claim:
        reply = engine.Reply(verification.challenge_start(tenant=tenant, visitor=session.visitor, claim=claim),
                             ["verification_sent"])
    elif answer and not answer.customer:
        reply = engine.Reply(answer.reply, ["verification_failed"])
    elif newly_identified and (answer or _only_identifies(text, tenant)):
        reply = engine.greet(interaction=interaction)  # "Welcome back — you were booking for …"
    else:
        reply = engine.respond(interaction=interaction, text=text)
    interaction_append_turn(interaction=interaction, role="agent", text=reply.text, in_reply_to=client_id,
                            actions=reply.actions)
    return [_frame(interaction, i) for i in (mine[-1], len(interaction.transcript) - 1)]
