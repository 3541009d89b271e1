"""The chat channel's writes: open a chat session from a ``hello``, record a message and answer it.

Identity: the browser's visitor id is a bearer credential, so it is hashed at ``hello`` and only its visitor
key (:mod:`channels_app.chat.visitors`) is kept: the ``cookie`` identifier's value, ``metadata["visitor_key"]``,
a message's ``provider_id`` (``chat:<key>:<client id>``) and ``sender`` (``visitor:<key>``). A signed chat link
identifies the customer at ``hello``; otherwise a phone number or email typed in chat is used — resolving to
the existing customer (identity priority phone > email > cookie), or attached, verified, to the visitor's own —
only once the visitor has typed back the one-time code sent to it (:mod:`channels_app.chat.verification`).
An unknown visitor creates nothing until they write. One chat session is one ``call_logs`` row (channel
``chat``) in the customer's open conversation, closed by the idle sweeper.

Frames returned here are the server side of the protocol documented in :mod:`channels_app.chat.consumer`;
every transcript turn carries ``seq`` (its index in the row's transcript) so a reconnecting widget asks for
``seq > last_seq`` and never shows a turn twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from django.db import transaction

from channels_app.chat import verification
from channels_app.chat.links import InvalidLink, chat_link_claim
from channels_app.chat.visitors import visitor_key
from conversations import engine
from conversations.models import Channel, Interaction
from conversations.selectors import ai_paused
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
    """Server-side state of one websocket connection; ``visitor_key`` is the hash of the browser's visitor id
    (the raw id is never kept, see :mod:`channels_app.chat.visitors`)."""

    tenant: Tenant
    visitor_key: str
    customer: Customer | None = None
    interaction: Interaction | None = None
    identified_by: str = ""
    extra: dict = field(default_factory=dict)


CODE_PLACEHOLDER = "[verification code]"


def _frame(interaction: Interaction, seq: int) -> dict:
    # ``session`` names the interaction whose transcript ``seq`` counts: when verification switches the visitor to
    # another session, numbering restarts and the widget must not drop the new turns as already shown.
    turn, session = interaction.transcript[seq], str(interaction.pk)
    if turn.get("role") == "customer":
        return {
            "type": "message",
            "seq": seq,
            "session": session,
            "id": turn.get("client_id", ""),
            "text": turn.get("text", ""),
        }
    frame = {
        "type": "reply",
        "seq": seq,
        "session": session,
        "role": turn.get("role", "agent"),
        "text": turn.get("text", ""),
    }
    return {**frame, "name": turn.get("staff_name", "")} if turn.get("role") == "staff" else frame


def replay(interaction: Interaction, last_seq: int) -> list[dict]:
    """Frames for the transcript turns after ``last_seq`` (customer, agent and staff turns)."""
    return [
        _frame(interaction, i)
        for i in range(max(last_seq + 1, 0), len(interaction.transcript))
        if interaction.transcript[i].get("role") in ("customer", "agent", "staff")
    ]


def _open(session: ChatSession, *, greet: bool, anonymous_before: bool = False) -> list[dict]:
    interaction, created = session_open(
        tenant=session.tenant,
        customer=session.customer,
        channel=Channel.CHAT,
        idle_window=session.tenant.sms_idle_window,
        metadata={"visitor_key": session.visitor_key, "identified_by": session.identified_by},
    )
    if not created and interaction.metadata.get("identified_by") != session.identified_by and session.identified_by:
        interaction_set_metadata(interaction=interaction, updates={"identified_by": session.identified_by})
    session.interaction = interaction
    if created and greet:
        reply = engine.greet(interaction=interaction)
        interaction_append_turn(interaction=interaction, role="agent", text=reply.text, kind="greeting")
    return []


def chat_hello(*, tenant: Tenant, visitor: str, link: str = "", last_seq: int = -1) -> tuple[ChatSession, list[dict]]:
    """Start a connection: identify the visitor (link token, else a known visitor key) and replay the session.

    ``visitor`` is the raw id the browser sent; it is hashed here (:func:`visitor_key`) and never kept.

    Returns the session and the frames to send: ``hello`` then the turns after ``last_seq`` (for a new
    session that includes the continuity greeting) and the customer's unanswered chat survey, if one waits
    (:func:`channels_app.surveys.chat_survey_pending`); for an unknown visitor a greeting without ``seq``.
    Raises :class:`ChatError` (``bad_visitor``, ``link_invalid``, ``link_expired``, ``link_used``).
    """
    if not VISITOR_RE.match(visitor or ""):
        raise ChatError("bad_visitor", "visitor must be 16-64 characters of [A-Za-z0-9_-]")
    session = ChatSession(tenant=tenant, visitor_key=visitor_key(visitor))
    if link:
        try:
            customer = chat_link_claim(link, tenant=tenant, visitor=session.visitor_key)
        except InvalidLink as exc:
            code = "link_expired" if "expired" in str(exc) else "link_used" if "used" in str(exc) else "link_invalid"
            raise ChatError(code, str(exc)) from None
        session.customer = _attach_visitor(tenant, customer, session.visitor_key)
        session.identified_by = "link"
    else:
        ident = (
            CustomerIdentifier.objects.select_related("customer")
            .filter(tenant=tenant, kind=IdentifierKind.COOKIE, value=session.visitor_key)
            .first()
        )
        if ident:
            session.customer, session.identified_by = ident.customer, "cookie"
    frames: list[dict] = []
    with transaction.atomic():
        if session.customer is not None:
            _open(session, greet=True)
    hello = {
        "type": "hello",
        "identified": session.customer is not None,
        "session": str(session.interaction.pk) if session.interaction else None,
    }
    if session.interaction is None:
        return session, [hello, {"type": "reply", "seq": None, "role": "agent", "text": _anonymous_greeting(tenant)}]
    session.interaction.refresh_from_db(fields=["transcript"])
    frames = [hello, *replay(session.interaction, last_seq)]
    from channels_app.surveys import chat_survey_pending  # surveys imports the SMS/email senders

    if survey := chat_survey_pending(tenant=tenant, customer=session.customer):
        frames.append(survey)  # the survey frame went out while this visitor had no connection: show it again
    return session, frames


def _anonymous_greeting(tenant: Tenant) -> str:
    return (
        f"Hi! This is {tenant.short_name}. I can book, move or cancel appointments, arrange a call back or "
        "connect you with our team. If you've been in touch before, tell me your phone number or email and "
        "I'll pick up where we left off."
    )


def _attach_visitor(tenant: Tenant, customer: Customer, key: str) -> Customer:
    """Attach the visitor key to ``customer`` by resolving with their strongest identifier plus the cookie."""
    idents = {i.kind: i.value for i in CustomerIdentifier.objects.filter(customer=customer).order_by("-verified")}
    strongest = next((k for k in KIND_PRIORITY if k in idents and k != IdentifierKind.COOKIE), None)
    if strongest is None:
        return customer
    return customer_resolve(tenant=tenant, cookie=key, **{strongest.value: idents[strongest]}).customer


def _fold_anonymous_visitor(session: ChatSession, owner: Customer) -> None:
    """After the visitor proved ``owner``'s phone or email: fold the anonymous customer this browser was until
    now (known by its cookie alone) into ``owner``, so its cookie and its turns join the patient's history."""
    current = session.customer
    if current is None or current.pk == owner.pk:
        return
    if CustomerIdentifier.objects.filter(customer=current).exclude(kind=IdentifierKind.COOKIE).exists():
        return  # a real other customer (shared computer): switch this connection only, merge nothing
    if owner.memory_opt_out:
        return  # the patient opted out of cross-channel memory: this browser is not linked to them
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


def _bind_proven(session: ChatSession, proven: verification.Answer) -> bool:
    """The visitor typed back the code for ``proven``'s identifier: make this browser that identifier's customer
    (folding an anonymous visitor into its owner), or attach it to the visitor's customer when it is nobody's
    yet; either way it is stored verified. True if the session is now the identifier's owner and was not."""
    before = session.customer.pk if session.customer is not None else None
    if proven.owner is not None:
        _fold_anonymous_visitor(session, proven.owner)
    customer = customer_resolve(
        tenant=session.tenant, cookie=session.visitor_key, verified_kinds=(proven.kind,), **{proven.kind: proven.value}
    ).customer
    if session.customer is None or customer.pk != session.customer.pk:
        if session.interaction is not None:
            interaction_close(interaction=session.interaction)  # that session was someone else's
        session.customer, session.interaction = customer, None
    session.identified_by = proven.kind
    if proven.kind == IdentifierKind.EMAIL:
        from channels_app.email.confirmations import email_confirmations_for_new_address

        email_confirmations_for_new_address(customer=customer)
    return proven.owner is not None and customer.pk != before


def chat_message(*, session: ChatSession, client_id: str, text: str) -> list[dict]:
    """Record the visitor's message once per ``client_id`` and answer it; returns the frames to broadcast.

    A phone or email in the text that is not yet a verified identifier of the session's customer gets a
    one-time code and the same neutral reply whether or not it is on file; nothing else is done with it until
    the code comes back (:mod:`channels_app.chat.verification`). The right code then switches the session to the
    identifier's customer ("Welcome back — you were booking for …"), or confirms it as the visitor's own. A
    repeated ``client_id`` (a resend after reconnect) records nothing and returns the stored turn and its
    reply. Raises :class:`ChatError` for a bad ``client_id``.
    """
    if not CLIENT_ID_RE.match(client_id or ""):
        raise ChatError("bad_id", "message id must be 8-64 characters of [A-Za-z0-9_-]")
    tenant = session.tenant
    answer = verification.challenge_answer(tenant=tenant, visitor_key=session.visitor_key, text=text)
    proven = answer if answer and answer.proven else None
    claim = (
        None
        if proven
        else verification.claim_needing_proof(
            tenant=tenant, current=session.customer, given=_identifiers_in(text, tenant)
        )
    )
    switched = False
    with transaction.atomic():
        if proven:
            switched = _bind_proven(session, proven)
        elif session.customer is None:
            session.customer = customer_resolve(tenant=tenant, cookie=session.visitor_key).customer
            session.identified_by = "cookie"
        if session.interaction is None or session.interaction.ended_at is not None:
            _open(session, greet=False)
        received = message_receive(
            tenant=tenant,
            customer=session.customer,
            channel=Channel.CHAT,
            provider_id=f"chat:{session.visitor_key}:{client_id}",
            sender=f"visitor:{session.visitor_key}",
            recipient="widget",
            text=CODE_PLACEHOLDER if answer else text,  # a typed-back code never enters the transcript
            idle_window=tenant.sms_idle_window,
            turn_extra={"client_id": client_id},
        )
    # one read for the rest of the message: the transcript and end as stored, with the tenant, customer and
    # conversation that triage and the agent use (the agent's session does not read them again)
    interaction = Interaction.objects.select_related("tenant", "customer", "conversation").get(
        pk=received.interaction.pk
    )
    interaction._agent_loaded = True  # see conversations.agent.session.session_for
    session.interaction = interaction
    mine = [i for i, t in enumerate(interaction.transcript) if t.get("client_id") == client_id]
    if received.duplicate:
        answered = [i for i, t in enumerate(interaction.transcript) if t.get("in_reply_to") == client_id]
        return [_frame(interaction, i) for i in mine + answered]
    # Safety before service: an emergency gets the safety reply even in a message that also gives a phone
    # number, and even while staff hold the conversation; a verification code (``answer``) is never triaged
    # (it would reach the LLM).
    assessed = None if answer else engine.triage_turn(interaction=interaction, text=text)
    if assessed is not None and assessed.is_emergency:
        reply = engine.respond(interaction=interaction, text=text, assessed=assessed)
    elif ai_paused(interaction.conversation_id):
        return [_frame(interaction, mine[-1])]  # staff have taken the conversation over: no AI reply
    elif claim:
        reply = engine.Reply(
            verification.challenge_start(
                tenant=tenant, visitor_key=session.visitor_key, claim=claim, customer=session.customer
            ),
            ["verification_sent"],
        )
    elif answer and not proven:
        reply = engine.Reply(answer.reply, ["verification_failed"])
    elif switched:
        reply = engine.greet(interaction=interaction)  # "Welcome back — you were booking for …"
    elif proven:
        reply = engine.Reply(verification.CONFIRMED[proven.kind], ["verification_confirmed"])
    else:
        reply = engine.respond(interaction=interaction, text=text, assessed=assessed)
    interaction_append_turn(
        interaction=interaction, role="agent", text=reply.text, in_reply_to=client_id, actions=reply.actions
    )
    return [_frame(interaction, i) for i in (mine[-1], len(interaction.transcript) - 1)]
