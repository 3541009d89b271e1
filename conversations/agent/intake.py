"""The patient intake: name, date of birth and reason for visit, one question at a time, on any channel.

What is still missing lives in the conversation's session state (:data:`INTAKE`), so an intake started by SMS is
finished in chat or by email ("Hi Sarah, you started your intake earlier — finish it now?"). Answers are stored on
the customer as they come (``identity.services.customer_set_intake``: the date of birth as a date, encrypted at
rest, like the reason for visit). A date of birth is read as people write it ("03/14/1985", "March 14, 1985",
"14 de marzo de 1985"); an impossible one (in the future, over 120 years ago) is asked again.
"""

from __future__ import annotations

import re
from datetime import date

import dateparser
from django.utils.translation import gettext as _

from conversations import services as conv_services
from conversations.agent.backends.local import detect_intent
from conversations.agent.session import AgentSession
from identity.services import customer_set_intake

#: Session-state key of an intake in progress: ``{"step": "name" | "dob" | "reason"}``.
INTAKE = "intake"
STEPS = ("name", "dob", "reason")
_START = re.compile(
    r"\b(intake|new patient|register(ing)?|registration|paperwork|patient form|formulario|registr(o|arme)"
    r"|paciente nuevo|nueva paciente)\b",
    re.I,
)
_NAME = re.compile(
    r"^\W*(?:(?:my name is|i'?m|it'?s|this is|me llamo|soy)\s+)?([^\W\d_][^\W\d_'’\-. ]*(?:[ '’\-.]+[^\W\d_][^\W\d_'’\-.]*){0,3})\W*$",
    re.I,
)


_NOT_A_NAME = re.compile(
    r"\?|\b(when|what|where|why|how|who|can|could|would|do|does|is|are|my|the|please|appointment|cita|cu[aá]ndo"
    r"|qu[eé]|d[oó]nde|c[oó]mo|quiero|necesito|hola|hi|hello|thanks|gracias|yes|no|ok)\b",
    re.I,
)


def wants_intake(text: str) -> bool:
    """Whether the patient asks to do (or finish) their intake."""
    return bool(_START.search(text or ""))


def intake_step(session: AgentSession) -> str | None:
    """The intake question waiting for an answer in this conversation, or None."""
    value = session.state.get(INTAKE)
    step = value.get("step") if isinstance(value, dict) else None
    return step if step in STEPS else None


def _question(step: str) -> str:
    return {
        "name": _("What is your full name?"),
        "dob": _("What is your date of birth? (for example 03/14/1985)"),
        "reason": _("In a few words, what is the reason for your visit?"),
    }[step]


def _next_missing(session: AgentSession, after: str | None = None) -> str | None:
    customer = session.customer
    have = {
        "name": bool(customer.display_name),
        "dob": bool(customer.date_of_birth),
        "reason": bool(customer.visit_reason),
    }
    order = list(STEPS)
    if after in order:  # ask in order; a step just answered is done even if it was skipped
        order = order[order.index(after) + 1 :]
    return next((step for step in order if not have[step]), None)


def _set_step(session: AgentSession, step: str | None) -> None:
    if step is None:
        conv_services.state_delete(conversation=session.conversation, keys=[INTAKE])
        session.state.pop(INTAKE, None)
    else:
        conv_services.state_set(conversation=session.conversation, key=INTAKE, value={"step": step}, at=session.now)
        session.state[INTAKE] = {"step": step}


def intake_start(session: AgentSession) -> str:
    """Begin (or resume) the intake with the first missing answer; says so when nothing is missing."""
    step = _next_missing(session)
    session.actions.append("intake_start")
    if step is None:
        _set_step(session, None)
        return _("Your intake is already complete — thank you! How else can I help?")
    _set_step(session, step)
    return _("Let's do your intake — three quick questions.") + " " + _question(step)


def intake_resume_line(session: AgentSession) -> str | None:
    """The greeting of a session while an intake waits: "Hi Sarah, you started your intake earlier — finish it
    now? …" (None when no intake is pending)."""
    step = intake_step(session)
    if step is None:
        return None
    first = (session.customer.display_name or "").split()[:1]
    hello = _("Hi {name}").format(name=first[0]) if first else _("Hi")
    return _("{hello}, you started your intake earlier — finish it now?").format(hello=hello) + " " + _question(step)


def parse_birth_date(text: str, *, today: date) -> date | None:
    """A date of birth in ``text`` (US month-first for numbers; English or Spanish month names), or None when
    there is none or it is impossible (in the future, more than 120 years ago)."""
    cleaned = re.sub(
        r"(?i)\b(my )?(date of birth|dob|birthday|born( on)?|it'?s|is|naci el|nac[ií] el|fecha de nacimiento)\b:?",
        " ",
        text or "",
    )
    value = dateparser.parse(
        cleaned.strip(),
        languages=["en", "es"],
        settings={"DATE_ORDER": "MDY", "PREFER_DATES_FROM": "past", "REQUIRE_PARTS": ["day", "month", "year"]},
    )
    if value is None:
        return None
    born = value.date()
    if born > today or today.year - born.year > 120:
        return None
    return born


def intake_answer(session: AgentSession, text: str) -> str | None:
    """Take ``text`` as the answer to the waiting intake question and ask the next one; None when it is not an
    answer (the agent then handles the message and the intake stays pending)."""
    step = intake_step(session)
    if step is None:
        return None
    customer = session.customer
    if step == "name":
        match = _NAME.match(text or "")
        if not match or len(match.group(1)) < 2 or "?" in text or _NOT_A_NAME.search(match.group(1)):
            return None
        if detect_intent(text):
            return None
        customer_set_intake(customer=customer, name=" ".join(w.capitalize() for w in match.group(1).split()))
    elif step == "dob":
        born = parse_birth_date(text, today=session.local(session.now).date())
        if born is None:
            if re.search(r"\d", text or ""):
                return _("Sorry, I couldn't read that date. What is your date of birth? (for example 03/14/1985)")
            return None
        customer_set_intake(customer=customer, date_of_birth=born)
    else:
        if len((text or "").strip()) < 3:
            return None
        customer_set_intake(customer=customer, visit_reason=text)
    session.actions.append(f"intake_{step}")
    following = _next_missing(session, after=step)
    _set_step(session, following)
    if following is None:
        return _("Thank you — your intake is complete. How else can I help?")
    return _("Thanks.") + " " + _question(following)
