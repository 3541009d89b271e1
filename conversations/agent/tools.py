"""The agent's tools: one implementation used by both backends (the local slot-filler and the LLM).

Each tool takes the :class:`AgentSession` and JSON-like arguments and returns a :class:`ToolResult`: ``say`` is
a sentence for the customer (the local backend sends it as is), ``data`` is what an LLM gets back. Dates and
times are the tenant's local wall-clock (``date`` ``YYYY-MM-DD``, ``time`` ``HH:MM`` 24-hour). ``TOOL_SCHEMAS``
are the OpenAI function-tool definitions (https://platform.openai.com/docs/guides/function-calling).
Channels are never imported: tools announce through ``conversations.signals`` and channels act on commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from conversations import services as conv_services
from conversations.agent import services as agent_services
from conversations.agent.dates import local_datetime, say_day, say_time, say_when
from conversations.agent.session import PENDING, AgentSession
from conversations.appointments import (
    BookingError,
    appointment_book,
    appointment_cancel,
    appointment_reschedule,
    availability,
    next_available,
    slot_problem,
)
from conversations.models import Appointment
from conversations.signals import channel_switch_requested
from identity.models import CustomerIdentifier, IdentifierKind

logger = logging.getLogger(__name__)
MAX_SLOTS_SAID = 6


@dataclass
class ToolResult:
    """Outcome of a tool: ``ok``, a sentence for the customer (``say``) and structured ``data`` for an LLM."""

    ok: bool
    say: str
    data: dict = field(default_factory=dict)


class ToolArgumentError(ValueError):
    """Arguments a tool cannot use (bad date/time format, unknown appointment)."""


def _day(value: Any) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ToolArgumentError(f"date must be YYYY-MM-DD, got {value!r}") from None


def _time(value: Any) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise ToolArgumentError(f"time must be HH:MM (24-hour), got {value!r}") from None


def _list(times: list[datetime]) -> str:
    return ", ".join(say_time(t) for t in times[:MAX_SLOTS_SAID])


def _alternatives(session: AgentSession, alts: list[datetime]) -> str:
    if not alts:
        return _("I couldn't find an open time nearby — would another day suit you?")
    days = {a.date() for a in alts}
    if len(days) == 1:
        return _("Open times on {day}: {times}.").format(day=say_day(alts[0].date()), times=_list(alts))
    return _("The next open times are {times}.").format(times=", ".join(say_when(a) for a in alts))


_REFUSALS = {
    "outside_hours": gettext_noop("{when} is outside our booking hours."),
    "too_soon": gettext_noop("{when} is too soon to book."),
    "too_far": gettext_noop("{when} is too far ahead to book."),
    "taken": gettext_noop("{when} is already taken."),
    "cancelled": gettext_noop("that appointment was cancelled."),
}


_PROPOSAL_KEYS = ("confirm", "appointment_id", "proposed_in")


def _set_pending(session: AgentSession, **values: Any) -> None:
    pending = {**session.pending, **values}
    if pending.get("intent") == "book":  # one request at a time: a booking carries nothing of a proposed move
        for key in _PROPOSAL_KEYS:
            pending.pop(key, None)
    conv_services.state_set(conversation=session.conversation, key=PENDING, value=pending, at=session.now)
    session.state[PENDING] = pending


def _clear_pending(session: AgentSession) -> None:
    conv_services.state_delete(conversation=session.conversation, keys=[PENDING])
    session.state.pop(PENDING, None)


def _appointment(session: AgentSession, appointment_id: str | None) -> Appointment | None:
    upcoming = session.upcoming()
    if appointment_id:
        return next((a for a in upcoming if str(a.pk) == str(appointment_id)), None)
    return upcoming[0] if upcoming else None


def _phone(session: AgentSession, usable_for_sms: bool = False) -> str | None:
    """The customer's oldest *verified* phone (E.164), or None. Verified means proven: the number an SMS or a
    call came from (the carrier vouches for it) or one whose one-time code was typed back in chat
    (:mod:`channels_app.chat.verification`). A number merely typed somewhere is never texted or called, so the
    agent cannot be used to text or call strangers (SMS pumping, toll fraud, harassment)."""
    qs = CustomerIdentifier.objects.filter(
        tenant=session.tenant, customer=session.customer, kind=IdentifierKind.PHONE, verified=True
    )
    if usable_for_sms:
        qs = qs.filter(sms_opted_out_at__isnull=True)
    return qs.order_by("created_at", "pk").values_list("value", flat=True).first()


def _reachable(session: AgentSession) -> bool:
    """Whether a confirmation can reach the customer: a verified phone or a verified email (see :func:`_phone`)."""
    return CustomerIdentifier.objects.filter(
        tenant=session.tenant,
        customer=session.customer,
        kind__in=[IdentifierKind.PHONE, IdentifierKind.EMAIL],
        verified=True,
    ).exists()


def _ask_for_contact(session: AgentSession, when: str) -> str:
    """What to say when a booking has nobody to confirm it to: hold the time and ask for a contact."""
    if session.channel == "chat":
        return _(
            "{when} is open and I'm holding your request. So I can send your confirmation, please type your "
            "mobile number (I'll text it a 6-digit code) or your email address here."
        ).format(when=when)
    return _(
        "{when} is open and I'm holding your request, but I need a confirmed phone number or email to send your "
        "confirmation to. Please text or call us from your mobile, or write to us by email."
    ).format(when=when)


def _needs_verified_phone(session: AgentSession, want: str) -> str:
    """What to say when ``want`` (e.g. "arrange a call back") needs a verified phone and there is none: in chat,
    offer the code flow (typing a number there texts it a code); elsewhere, ask them to get in touch from it."""
    if session.channel == "chat":
        return _(
            "I'd be glad to {want}, but I can only use a number that's been confirmed. Type your mobile number "
            "here and I'll text it a 6-digit code to confirm it."
        ).format(want=want)
    return _(
        "I'd be glad to {want}, but I can only use a number that's been confirmed. Please call or text us "
        "from that phone, or give it to us in our website chat."
    ).format(want=want)


def _refused(session: AgentSession, exc: BookingError, *, intent: str, day, start) -> ToolResult:
    """A refused slot: keep the day pending and offer the nearest open times."""
    _set_pending(session, intent=intent, date=day.isoformat(), time=None)
    said = _(_REFUSALS[exc.code]).format(when=say_when(start))
    return ToolResult(
        False,
        _("Sorry — {reason}").format(reason=said)
        + " "
        + _alternatives(session, [session.local(a) for a in exc.alternatives]),
        {"error": exc.code, "alternatives": [a.isoformat() for a in exc.alternatives]},
    )


def _scheduled(session: AgentSession, appt, message: str) -> ToolResult:
    """A booked or moved appointment: clear what was pending and say when (``{when}`` in ``message``)."""
    _clear_pending(session)
    local_start = session.local(appt.starts_at)
    return ToolResult(
        True,
        message.format(when=say_when(local_start)),
        {"appointment_id": str(appt.pk), "starts_at": local_start.isoformat()},
    )


# --- the tools --------------------------------------------------------------------------------------------------


def list_availability(session: AgentSession, *, date: str) -> ToolResult:
    """Open slots on ``date`` (ISO day, tenant time zone) → ``data = {"date", "slots": ["HH:MM"], "next_open"}``."""
    day = _day(date)
    slots = availability(tenant=session.tenant, day=day, now=session.now)
    if slots:
        return ToolResult(
            True,
            _("Open times on {day}: {times}.").format(day=say_day(day), times=_list(slots)),
            {"date": day.isoformat(), "slots": [s.strftime("%H:%M") for s in slots]},
        )
    later = next_available(tenant=session.tenant, after=day, now=session.now)
    return ToolResult(
        False,
        _("We have no openings on {day}.").format(day=say_day(day)) + " " + _alternatives(session, later),
        {"date": day.isoformat(), "slots": [], "next_open": [s.isoformat() for s in later]},
    )


def note_booking_request(
    session: AgentSession, *, intent: str = "book", date: str | None = None, time: str | None = None
) -> ToolResult:
    """Remember a day and/or time the customer gave before booking (``intent`` book|reschedule); raises
    :class:`ToolArgumentError` for another intent. ``data = {"pending": {...}}``."""
    if intent not in ("book", "reschedule"):
        raise ToolArgumentError("intent must be book or reschedule")
    _set_pending(
        session,
        intent=intent,
        date=_day(date).isoformat() if date else session.pending.get("date"),
        time=_time(time).strftime("%H:%M") if time else session.pending.get("time"),
    )
    return ToolResult(True, _("Noted."), {"pending": session.pending})


def book_appointment(session: AgentSession, *, date: str, time: str) -> ToolResult:
    """Book ``date`` (ISO day) at ``time`` (HH:MM) in the tenant's time zone for the session's customer.

    A refused slot (taken, closed, past) returns ``ok=False`` with ``data = {"error", "alternatives": [ISO]}``
    and keeps the day pending; success gives ``{"appointment_id", "starts_at"}`` and queues the confirmation.
    """
    day, at = _day(date), _time(time)
    start = local_datetime(day, at, session.tz)
    if not _reachable(session):
        if problem := slot_problem(tenant=session.tenant, starts_at=start, now=session.now):
            return _refused(session, problem, intent="book", day=day, start=start)
        _set_pending(session, intent="book", date=day.isoformat(), time=at.strftime("%H:%M"), confirm=False)
        return ToolResult(
            False, _ask_for_contact(session, say_when(session.local(start))), {"error": "no_contact", "held": True}
        )
    try:
        appt = appointment_book(
            tenant=session.tenant,
            customer=session.customer,
            starts_at=start,
            conversation=session.conversation,
            booked_via=session.channel,
            now=session.now,
        )
    except BookingError as exc:
        return _refused(session, exc, intent="book", day=day, start=start)
    return _scheduled(session, appt, _("You're booked for {when}. I'll send you a confirmation."))


def reschedule_appointment(
    session: AgentSession, *, time: str, date: str | None = None, appointment_id: str | None = None
) -> ToolResult:
    """PROPOSE moving the customer's next (or ``appointment_id``) appointment to ``time`` on ``date`` (default:
    its own day); nothing moves until the customer agrees and :func:`confirm_change` runs in a LATER turn.

    The proposal is the conversation's one pending request (``data = {"needs_confirmation": True, ...}``); a slot
    that cannot be had is refused with alternatives as in :func:`book_appointment`. Refused for an unconfirmed
    sender (``identity == "other"``).
    """
    if session.identity == "other":
        return ToolResult(False, _("I can't change that booking here; our team can help."), {"error": "identity"})
    appt = _appointment(session, appointment_id or session.pending.get("appointment_id"))
    if appt is None:
        return ToolResult(
            False,
            _("I couldn't find an upcoming appointment to move. Would you like to book one?"),
            {"error": "not_found"},
        )
    day = _day(date) if date else session.local(appt.starts_at).date()
    start = local_datetime(day, _time(time), session.tz)
    was = say_when(session.local(appt.starts_at))
    if start == appt.starts_at:
        _clear_pending(session)
        return ToolResult(
            True, _("You're already booked for {when}.").format(when=was), {"appointment_id": str(appt.pk)}
        )
    if problem := slot_problem(tenant=session.tenant, starts_at=start, now=session.now, exclude=appt):
        return _refused(session, problem, intent="reschedule", day=day, start=start)
    _set_pending(
        session,
        intent="reschedule",
        date=day.isoformat(),
        time=start.strftime("%H:%M"),
        appointment_id=str(appt.pk),
        confirm=True,
        proposed_in=session.turn_id,
    )
    new = say_when(session.local(start))
    return ToolResult(
        True,
        _(
            "Your appointment is on {was}. Shall I move it to {new}? Reply yes to confirm — or tell me if this is "
            "another appointment."
        ).format(was=was, new=new),
        {"needs_confirmation": True, "appointment_id": str(appt.pk), "from": was, "to": start.isoformat()},
    )


def confirm_change(session: AgentSession) -> ToolResult:
    """Carry out the pending request the customer just agreed to: the proposed move (or a held booking).

    Only a proposal made in an EARLIER turn can be confirmed (``proposed_in``): an LLM cannot propose and
    confirm in one breath. ``data = {"error": "nothing_pending"|"not_confirmed_yet"}`` otherwise.
    """
    pending = session.pending
    if pending.get("intent") == "book" and pending.get("date") and pending.get("time"):
        return book_appointment(session, date=pending["date"], time=pending["time"])
    if not (pending.get("intent") == "reschedule" and pending.get("confirm") and pending.get("time")):
        return ToolResult(False, _("There's no change waiting for your confirmation."), {"error": "nothing_pending"})
    if pending.get("proposed_in") == session.turn_id:
        return ToolResult(False, "", {"error": "not_confirmed_yet"})
    if session.identity == "other":
        return ToolResult(False, _("I can't change that booking here; our team can help."), {"error": "identity"})
    appt = _appointment(session, pending.get("appointment_id"))
    if appt is None:
        _clear_pending(session)
        return ToolResult(False, _("I couldn't find that appointment any more."), {"error": "not_found"})
    day = _day(pending["date"])
    start = local_datetime(day, _time(pending["time"]), session.tz)
    try:
        appt = appointment_reschedule(appointment=appt, starts_at=start, now=session.now)
    except BookingError as exc:
        return _refused(session, exc, intent="reschedule", day=day, start=start)
    return _scheduled(session, appt, _("Done — your appointment is moved to {when}. I'll send you a confirmation."))


def keep_appointment(session: AgentSession) -> ToolResult:
    """The customer declined the proposed change: forget it; the appointment stays where it is."""
    appt = _appointment(session, session.pending.get("appointment_id"))
    _clear_pending(session)
    if appt is None:
        return ToolResult(True, _("Okay — nothing has changed. How else can I help?"), {"kept": True})
    when = say_when(session.local(appt.starts_at))
    return ToolResult(
        True,
        _("Okay — your appointment stays on {when}.").format(when=when),
        {"kept": True, "appointment_id": str(appt.pk)},
    )


def my_appointments(session: AgentSession) -> ToolResult:
    """The customer's upcoming appointments (none for an unconfirmed sender): ``data = {"appointments": [ISO]}``."""
    if session.identity == "other":
        return ToolResult(False, _("I can't share booking details here; our team can help."), {"error": "identity"})
    upcoming = session.upcoming()
    if not upcoming:
        return ToolResult(
            True, _("I don't see an upcoming appointment for you. Would you like to book one?"), {"appointments": []}
        )
    said = [say_when(session.local(a.starts_at)) for a in upcoming]
    text = _("Your appointment is on {when}.").format(when=said[0])
    if len(said) > 1:
        text = _("Your upcoming appointments: {list}.").format(list="; ".join(said))
    return ToolResult(
        True,
        text,
        {"appointments": [{"id": str(a.pk), "starts_at": session.local(a.starts_at).isoformat()} for a in upcoming]},
    )


def cancel_appointment(session: AgentSession, *, appointment_id: str | None = None) -> ToolResult:
    """Cancel the customer's next (or ``appointment_id``) appointment; refused for an unconfirmed sender."""
    if session.identity == "other":
        return ToolResult(False, _("I can't change that booking here; our team can help."), {"error": "identity"})
    appt = _appointment(session, appointment_id)
    if appt is None:
        return ToolResult(False, _("I couldn't find an upcoming appointment to cancel."), {"error": "not_found"})
    appointment_cancel(appointment=appt)
    _clear_pending(session)
    when = say_when(session.local(appt.starts_at))
    return ToolResult(
        True,
        _("Your appointment on {when} is cancelled. Just ask if you'd like to book again.").format(when=when),
        {"appointment_id": str(appt.pk), "cancelled": True},
    )


def request_callback(session: AgentSession, *, reason: str = "", preferred_time: str | None = None) -> ToolResult:
    """Record a callback request (the voice channel places the call); needs a verified phone (see :func:`_phone`),
    else ``ok=False`` with ``data = {"error": "no_verified_phone"}`` and an offer to confirm one."""
    phone = _phone(session)
    if not phone:
        return ToolResult(
            False, _needs_verified_phone(session, _("arrange a call back")), {"error": "no_verified_phone"}
        )
    request, _created = agent_services.callback_request(
        interaction=session.interaction,
        phone=phone,
        reason=reason or "callback requested",
        context={"pending": session.pending, "preferred_time": preferred_time},
    )
    return ToolResult(
        True, _("I've asked our team to call you back as soon as they can."), {"callback_request_id": request.pk}
    )


def handoff_to_human(session: AgentSession, *, reason: str = "") -> ToolResult:
    """Mark the interaction escalated and notify staff in admin (``StaffNotification``)."""
    agent_services.handoff_request(interaction=session.interaction, reason=reason)
    return ToolResult(
        True, _("I've asked a member of our team to take over — they'll be in touch shortly."), {"escalated": True}
    )


def start_fresh(session: AgentSession) -> ToolResult:
    """Forget the conversation's state (pending booking, notes) so the next turn starts clean."""
    agent_services.conversation_start_fresh(conversation=session.conversation)
    session.state.clear()
    return ToolResult(True, _("Okay — I've cleared what we had so far. How can I help?"), {"cleared": True})


def send_chat_link(session: AgentSession) -> ToolResult:
    """Text the customer a signed chat link (on commit; one SMS per turn) to continue in the widget; needs a
    verified phone that has not opted out, else ``data = {"error": "no_verified_phone"}``."""
    if not _phone(session, usable_for_sms=True):
        return ToolResult(
            False, _("I don't have a confirmed mobile number I can text for you."), {"error": "no_verified_phone"}
        )
    interaction_id = session.interaction.pk
    ref = str(len(session.interaction.transcript))  # same turn retried → same ref → one SMS
    transaction.on_commit(
        lambda: channel_switch_requested.send(
            sender=AgentSession, interaction_id=interaction_id, channel="chat", ref=ref
        ),
        robust=True,
    )
    return ToolResult(
        True, _("I've texted you a link — open it to continue in our chat, right where we left off."), {"sent": True}
    )


@dataclass(frozen=True)
class Tool:
    """One tool as both backends see it: a name, a description and a JSON Schema for its arguments."""

    name: str
    description: str
    parameters: dict
    func: Callable[..., ToolResult]


def _schema(properties: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_DATE = {"type": "string", "description": "Local date, YYYY-MM-DD"}
_TIME_ = {"type": "string", "description": "Local time, HH:MM 24-hour"}
_APPT = {"type": "string", "description": "Appointment id; omit for the next upcoming one"}

TOOLS: dict[str, Tool] = {
    t.name: t
    for t in [
        Tool(
            "list_availability",
            "Open appointment times on a day.",
            _schema({"date": _DATE}, ["date"]),
            list_availability,
        ),
        Tool(
            "note_booking_request",
            "Remember a day/time the customer wants before booking (continuity).",
            _schema(
                {"intent": {"type": "string", "enum": ["book", "reschedule"]}, "date": _DATE, "time": _TIME_},
                ["intent"],
            ),
            note_booking_request,
        ),
        Tool(
            "book_appointment",
            "Book an appointment at a local date and time.",
            _schema({"date": _DATE, "time": _TIME_}, ["date", "time"]),
            book_appointment,
        ),
        Tool(
            "reschedule_appointment",
            "Propose moving the customer's appointment to a new time (date optional: same day). Nothing moves "
            "until the customer says yes in a later message and you call confirm_change.",
            _schema({"date": _DATE, "time": _TIME_, "appointment_id": _APPT}, ["time"]),
            reschedule_appointment,
        ),
        Tool(
            "confirm_change",
            "The customer agreed to the pending proposal (a move, or a held booking): carry it out.",
            _schema({}, []),
            confirm_change,
        ),
        Tool(
            "keep_appointment",
            "The customer declined the proposed change: keep the appointment as it is.",
            _schema({}, []),
            keep_appointment,
        ),
        Tool(
            "my_appointments",
            "The customer's upcoming appointments (answer 'when is my appointment?').",
            _schema({}, []),
            my_appointments,
        ),
        Tool(
            "cancel_appointment",
            "Cancel the customer's appointment.",
            _schema({"appointment_id": _APPT}, []),
            cancel_appointment,
        ),
        Tool(
            "request_callback",
            "Arrange for staff to call the customer back.",
            _schema({"reason": {"type": "string"}, "preferred_time": {"type": "string"}}, ["reason"]),
            request_callback,
        ),
        Tool(
            "handoff_to_human",
            "Hand the conversation to a human staff member.",
            _schema({"reason": {"type": "string"}}, ["reason"]),
            handoff_to_human,
        ),
        Tool("start_fresh", "Forget the pending request and start over.", _schema({}, []), start_fresh),
        Tool(
            "send_chat_link",
            "Text the customer a link to continue this conversation in the web chat.",
            _schema({}, []),
            send_chat_link,
        ),
    ]
}

TOOL_SCHEMAS = [
    {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
    for t in TOOLS.values()
]


def call_tool(session: AgentSession, name: str, args: dict | None = None) -> ToolResult:
    """Run tool ``name`` with ``args``; unknown tools and bad arguments give ``ok=False`` (never raise)."""
    tool = TOOLS.get(name)
    if tool is None:
        return ToolResult(False, "", {"error": f"unknown tool {name}"})
    try:
        result = tool.func(session, **(args or {}))
    except (ToolArgumentError, TypeError) as exc:
        logger.info("tool %s refused arguments: %s", name, exc)
        return ToolResult(False, "", {"error": str(exc)})
    session.actions.append(name)
    return result
