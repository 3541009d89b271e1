"""One agent engine for every channel: a turn takes the session and the customer's words, returns a reply.

``turn(interaction=…, text=…)`` and ``greet(interaction=…)`` are what channels call (through
``conversations.engine``). The caller records the customer's turn and the reply in the transcript (the SMS
channel as provider messages, chat as websocket turns); the engine reads and writes session state and runs
tools. Identity check (``AgentSettings.identity_check == "phone"``): a returning patient recognised only by a
phone number — which a family may share — is asked for their first name before anything from earlier is
used; a different name means this session ignores the remembered state and cannot change existing bookings.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from conversations import services as conv_services
from conversations.agent.backends import get_backend
from conversations.agent.backends.local import LocalBackend
from conversations.agent.session import AgentSession, continuity_greeting, session_for
from conversations.models import AgentSettings, Appointment, Interaction

logger = logging.getLogger(__name__)


@dataclass
class Reply:
    """The engine's answer: ``text`` to send on the session's channel, ``actions`` taken (tool names) and the
    ``triage`` of the customer's turn."""

    text: str
    actions: list[str] = field(default_factory=list)
    triage: Any = None  # conversations.triage.TriageResult of the customer's turn, when it was triaged


def _identified_by(interaction: Interaction) -> str:
    default = "phone" if interaction.channel in ("sms", "voice", "voicemail") else ""
    return (interaction.metadata or {}).get("identified_by", default)


def _needs_identity_check(session: AgentSession) -> bool:
    if session.settings.identity_check != AgentSettings.IdentityCheck.PHONE or session.identity:
        return False
    if _identified_by(session.interaction) != "phone" or not session.customer.display_name:
        return False
    returning = (
        Interaction.objects.filter(customer=session.customer).exclude(pk=session.interaction.pk).exists()
        or Appointment.objects.filter(customer=session.customer).exists()
    )
    return returning


def _first_name(value: str) -> str:
    words = re.findall(r"[a-zA-Z'\-]+", value or "")
    return words[0].lower() if words else ""


def _identity_prompt(session: AgentSession, text: str) -> str:
    conv_services.interaction_set_workflow(
        interaction=session.interaction, updates={"identity": "asked", "identity_pending_text": text[:1000]}
    )
    return (
        f"Hi, this is {session.tenant.short_name}. Before we go on — more than one person may use this "
        "number — please tell me your first name."
    )


def _identity_answer(session: AgentSession, text: str, now: datetime) -> Reply:
    expected = _first_name(session.customer.display_name)
    given = re.sub(r"^(it'?s|this is|i am|i'?m|my name is)\s+", "", text.strip(), flags=re.I)
    confirmed = bool(expected) and _first_name(given) == expected
    stashed = (session.interaction.workflow or {}).get("identity_pending_text", "")
    conv_services.interaction_set_workflow(
        interaction=session.interaction,
        updates={"identity": "confirmed" if confirmed else "other", "identity_pending_text": ""},
    )
    fresh = session_for(interaction=session.interaction, now=now)
    if confirmed:
        if stashed and stashed.strip():
            return _run(fresh, stashed, prefix=f"Thanks, {session.customer.display_name.split()[0]}. ")
        return Reply(continuity_greeting(fresh), fresh.actions)
    return Reply("Thanks. I won't use details from earlier conversations on this number. How can I help you today?")


def _run(session: AgentSession, text: str, prefix: str = "", deadline: float | None = None) -> Reply:
    # a clinic that forbids LLMs (Tenant.llm_forbidden) is answered by the offline agent, whatever AGENT_BACKEND says
    backend = get_backend("local" if session.tenant.llm_forbidden else None)
    try:
        said = backend.respond(session, text, deadline=deadline)
    except Exception as exc:
        if getattr(backend, "name", "") == "local":
            raise
        logger.warning("agent backend %s failed (%s); answering with the local backend", backend.name, exc)
        said = LocalBackend().respond(session, text)
    return Reply(prefix + said, list(session.actions))


def turn(*, interaction: Interaction, text: str, now: datetime | None = None, deadline: float | None = None) -> Reply:
    """Answer ``text`` (the customer's words, already recorded) in ``interaction``; tools run as needed.

    Returns the reply text and the tool names run. Never raises for a backend outage: the local backend
    answers instead (database errors do propagate). ``deadline`` (``time.monotonic()`` seconds) caps the LLM
    backend's requests; past it the backend gives up as if the LLM were down.
    """
    session = session_for(interaction=interaction, now=now)
    if session.identity == "asked":
        return _identity_answer(session, text, session.now)
    if _needs_identity_check(session):
        return Reply(_identity_prompt(session, text), ["identity_check"])
    return _run(session, text, deadline=deadline)


def greet(*, interaction: Interaction, anonymous: bool = False, now: datetime | None = None) -> Reply:
    """The opening line when a session opens (chat connect, inbound call), aware of pending state."""
    session = session_for(interaction=interaction, now=now)
    if session.identity == "asked":
        return Reply("Please tell me your first name so I can continue.", [])
    if _needs_identity_check(session):
        return Reply(_identity_prompt(session, ""), ["identity_check"])
    return Reply(continuity_greeting(session, anonymous=anonymous), [])
