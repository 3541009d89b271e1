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

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from conversations import services as conv_services
from conversations.agent.backends import get_backend
from conversations.agent.backends.local import LocalBackend
from conversations.agent.dates import parse_when, say_when
from conversations.agent.intake import (
    intake_answer,
    intake_resume_line,
    intake_start,
    intake_step,
    parse_birth_date,
    wants_intake,
)
from conversations.agent.session import PENDING, AgentSession, continuity_greeting, session_for
from conversations.agent.tools import call_tool
from conversations.language import language_of, language_remember
from conversations.memo import turn_memo
from conversations.models import AgentSettings, Appointment, Interaction
from conversations.reminders.models import AppointmentReminder
from conversations.reminders.services import REMINDER, open_reminder, reminder_answer, reminder_answer_kind
from conversations.surveys.services import (
    SURVEY,
    open_survey,
    survey_answer,
    survey_decline,
    survey_forget,
    survey_read_reply,
)

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


def _dob_policy(session: AgentSession) -> bool:
    return session.settings.identity_check == AgentSettings.IdentityCheck.DOB


def _needs_identity_check(session: AgentSession) -> bool:
    """Whether this session must confirm who is writing first: the shared-phone policy asks a returning patient
    recognised by phone for their first name; the date-of-birth policy asks every returning patient with a date
    of birth on file (from their intake) for it, on every channel."""
    if session.identity:
        return False
    if _dob_policy(session):
        if not session.customer.date_of_birth:
            return False
    elif session.settings.identity_check != AgentSettings.IdentityCheck.PHONE:
        return False
    elif _identified_by(session.interaction) != "phone" or not session.customer.display_name:
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
    if _dob_policy(session):
        return _("Hi, this is {clinic}. Before we go on, please confirm your date of birth.").format(
            clinic=session.tenant.short_name
        )
    return _(
        "Hi, this is {clinic}. Before we go on — more than one person may use this "
        "number — please tell me your first name."
    ).format(clinic=session.tenant.short_name)


def _identity_answer(session: AgentSession, text: str, now: datetime) -> Reply:
    if _dob_policy(session):
        born = parse_birth_date(text, today=session.local(now).date())
        confirmed = born is not None and born == session.customer.date_of_birth
    else:
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
            first = (session.customer.display_name or "").split()[:1]
            thanks = _("Thanks, {name}.").format(name=first[0]) if first else _("Thanks.")
            return _run(fresh, stashed, prefix=thanks + " ")
        return Reply(continuity_greeting(fresh), fresh.actions)
    return Reply(_("Thanks. I won't use details from earlier conversations on this number. How can I help you today?"))


def _reminder_reply(session: AgentSession, text: str) -> str | None:
    """The answer to a reply to an appointment reminder sent in this conversation ("C", "👍", "yes I'll be
    there" → confirmed; "X", "cancela por favor" → cancelled; "R", "can we move it to thursday?" → the move is
    handed to the agent with that appointment pending), or None to let the agent answer as usual. No query
    when no reminder waits for an answer."""
    if REMINDER not in session.state or session.identity == "other":
        return None
    reminder = open_reminder(state=session.state, customer_id=session.customer.pk, now=session.now)
    kind = reminder_answer_kind(text) if reminder is not None else None
    if reminder is None or kind is None:
        return None
    appointment_id = str(reminder.appointment_id)
    if kind == AppointmentReminder.Answer.CANCELLED:  # recorded only once the appointment is really cancelled
        result = call_tool(session, "cancel_appointment", {"appointment_id": appointment_id})
        if result.ok:
            reminder_answer(reminder=reminder, answer=kind, conversation=session.conversation, at=session.now)
            session.state.pop(REMINDER, None)
        return result.say
    reminder_answer(reminder=reminder, answer=kind, conversation=session.conversation, at=session.now)
    session.state.pop(REMINDER, None)
    if kind == AppointmentReminder.Answer.CONFIRMED:
        session.actions.append("reminder_confirmed")
        when = say_when(session.local(reminder.appointment.starts_at))
        return _("Thank you — you're confirmed for {when}. See you then!").format(when=when)
    pending = {"intent": "reschedule", "date": None, "time": None, "appointment_id": appointment_id}
    conv_services.state_set(conversation=session.conversation, key=PENDING, value=pending, at=session.now)
    session.state[PENDING] = pending
    session.actions.append("reminder_reschedule")
    if parse_when(text, tz=session.tz, now=session.now).empty:
        return _("Sure — when would you like to move it to?")
    return None  # "can we move it to thursday?": the agent proposes the move (nothing moves before a yes)


def _survey_reply(session: AgentSession, text: str) -> str | None:
    """The answer to a reply to the satisfaction survey sent in this conversation ("4", "5 stars!", "⭐⭐⭐",
    "no more surveys"), or None. Anything else means the patient moved on: the survey is forgotten and the agent
    answers. No query when no survey waits."""
    if SURVEY not in session.state:
        return None
    survey = open_survey(state=session.state, customer_id=session.customer.pk)
    read = survey_read_reply(text) if survey is not None else None
    session.state.pop(SURVEY, None)
    if survey is None or read is None:
        survey_forget(conversation=session.conversation)
        return None
    if read == "decline":
        survey_decline(survey=survey, at=session.now)
        session.actions.append("survey_declined")
        return _("Understood — we won't ask you for feedback again.")
    assert isinstance(read, int)
    survey_answer(survey=survey, score=read, at=session.now)
    session.actions.append("survey_answered")
    if read <= 2:
        return _("Thank you for telling us. We're sorry we fell short — our team will look at what went wrong.")
    return _("Thank you for your feedback!")


def _run(session: AgentSession, text: str, prefix: str = "", deadline: float | None = None) -> Reply:
    answered = _survey_reply(session, text)
    if answered is None:
        answered = _reminder_reply(session, text)
    if answered is None and intake_step(session):
        answered = intake_answer(session, text)
    if answered is None and wants_intake(text):
        answered = intake_start(session)
    if answered is not None:
        return Reply(prefix + answered, list(session.actions))
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


def _language(session: AgentSession, text: str | None) -> str:
    """The language of this turn: the customer's (updated from ``text``), except on a call, which speaks and
    listens in ``VOICE_LANGUAGE`` (one TTS voice and one speech-recognition language per call)."""
    if session.channel in ("voice", "voicemail"):
        return getattr(settings, "VOICE_LANGUAGE", "en-US")[:2].lower()
    if text is None:
        return language_of(session.customer)
    return language_remember(customer=session.customer, text=text)


def turn(*, interaction: Interaction, text: str, now: datetime | None = None, deadline: float | None = None) -> Reply:
    """Answer ``text`` (the customer's words, already recorded) in ``interaction``; tools run as needed.

    Returns the reply text and the tool names run. Never raises for a backend outage: the local backend
    answers instead (database errors do propagate). ``deadline`` (``time.monotonic()`` seconds) caps the LLM
    backend's requests; past it the backend gives up as if the LLM were down.
    """
    with turn_memo():  # the tenant's settings and state TTL are read once in this turn
        session = session_for(interaction=interaction, now=now)
        with translation.override(_language(session, text)):
            if session.identity == "asked":
                return _identity_answer(session, text, session.now)
            if _needs_identity_check(session):
                return Reply(_identity_prompt(session, text), ["identity_check"])
            return _run(session, text, deadline=deadline)


def greet(*, interaction: Interaction, anonymous: bool = False, now: datetime | None = None) -> Reply:
    """The opening line when a session opens (chat connect, inbound call), aware of pending state."""
    session = session_for(interaction=interaction, now=now)
    with translation.override(_language(session, None)):
        if session.identity == "asked":
            if _dob_policy(session):
                return Reply(_("Please confirm your date of birth so I can continue."), [])
            return Reply(_("Please tell me your first name so I can continue."), [])
        if _needs_identity_check(session):
            return Reply(_identity_prompt(session, ""), ["identity_check"])
        return Reply(intake_resume_line(session) or continuity_greeting(session, anonymous=anonymous), [])
