"""The local backend: keyword intents and slot-filling for the same tools, no network.

A booking needs a day and a time; each can come in a different turn, on a different channel ("I'd like to
book for Tuesday" by SMS, then "2 PM" in chat): what is known is kept in the ``pending`` session state.
Dates and times are read by ``dateparser`` in the tenant's time zone (:mod:`conversations.agent.dates`).
"""

from __future__ import annotations

import re
from datetime import date, time

from django.utils.translation import gettext as _

from conversations import services as conv_services
from conversations.agent.dates import When, fit_hours, parse_when, say_day
from conversations.agent.session import NAME, AgentSession
from conversations.agent.tools import call_tool

_INTENTS = [
    ("start_fresh", re.compile(r"\b(start (over|fresh|again)|fresh start|reset|forget (it|that|everything))\b", re.I)),
    (
        "handoff",
        re.compile(
            r"\b(human|real person|receptionist|operator)\b|\b(speak|talk|connect|transfer)\b.{0,30}"
            r"\b(person|someone|somebody|staff|team|doctor|nurse)\b"
            r"|\b(hablar|comunicarme)\b.{0,30}\b(persona|alguien|recepci[oó]n|doctor|doctora|enfermer[oa])\b",
            re.I,
        ),
    ),
    ("link", re.compile(r"\b(text|send|sms|message)\b.{0,20}\blink\b|\bcontinue\b.{0,15}\bchat\b", re.I)),
    (
        "callback",
        re.compile(
            r"\b(call me( back)?|callback|call back|ring me|give me a call|phone me|ll[aá]m[ae]me|ll[aá]menme"
            r"|me (pueden|puede) llamar)\b",
            re.I,
        ),
    ),
    ("cancel", re.compile(r"\bcancel\b|\bcancel(ar|a|o|e)\b|\banular\b", re.I)),
    (
        "reschedule",
        re.compile(r"\b(reschedule|move|change|push back|bring forward|cambiar|mover|moverla|reprogramar)\b", re.I),
    ),
    (
        "availability",
        re.compile(
            r"\b(availab\w*|openings?|free (slots?|times?)|open (slots?|times?)|what times|disponib\w*"
            r"|qu[eé] horas?)\b",
            re.I,
        ),
    ),
    (
        "book",
        re.compile(
            r"\b(book\w*|appointment|schedule|see (the|a) (doctor|dentist|nurse)|come in|visit|cita|reservar"
            r"|agendar|programar|turno|consulta)\b",
            re.I,
        ),
    ),
]
_WHEN_IS_MINE = re.compile(
    r"\b(when|what (time|day|date))\b.{0,25}\b(my|our|the)\b.{0,15}\b(appointment|appt|booking|visit)s?\b"
    r"|\b(do|have) i (have|got)\b.{0,20}\b(appointment|appt|booking)s?\b"
    r"|\bmy (next |upcoming )?(appointment|appt|booking)s?\s*\?"
    r"|\b(cu[aá]ndo|qu[eé] d[ií]a|a qu[eé] hora)\b.{0,20}\b(mi|la)\s+cita\b|\btengo (una )?cita\b",
    re.I,
)
_ANOTHER = re.compile(
    r"\b(another|second|separate|additional|extra|different|new)\b.{0,25}\b(appointment|appt|booking|one|visit)\b"
    r"|\b(also|as well)\b.{0,25}\bbook\b|\bbook\b.{0,40}\b(also|as well|too)\b|\botra cita\b",
    re.I,
)
_YES = re.compile(
    r"^\W*(yes|yeah|yep|yup|sure|ok(ay)?|confirm(ed)?|correct|please do|go ahead|sounds good|perfect|great|"
    r"that works|do it|si|sí|claro|vale|de acuerdo|perfecto|est[aá] bien|dale|por favor)\b",
    re.I,
)
_NO = re.compile(
    r"^\W*(no|nope|nah|don'?t|do not|leave it|keep it|never ?mind|cancel that|mejor no|d[eé]jela|d[eé]jalo)\b", re.I
)
_RECALL = re.compile(r"\b(do you remember( me)?|what('?s| is) my name|who am i)\b", re.I)
_MAKE_IT = re.compile(r"\b(make it|instead|how about|what about)\b", re.I)
_NAME = re.compile(r"\b(?:my name is|this is|i am|i'm)\s+([A-Z][a-zA-Z'\-]{1,30})\b", re.I)
_NOT_NAMES = {"looking", "trying", "calling", "here", "not", "just", "available", "free", "sorry", "sick", "fine"}


def detect_intent(text: str) -> str | None:
    """The first intent whose pattern matches ``text`` (order above is priority), or None."""
    return next((name for name, pattern in _INTENTS if pattern.search(text or "")), None)


class LocalBackend:
    """Offline agent: same tools and state as the LLM backend; see the module docstring."""

    name = "local"

    def respond(self, session: AgentSession, text: str, deadline: float | None = None) -> str:
        """The reply to ``text``; tools run as side effects (recorded in ``session.actions``). Instant, so
        ``deadline`` is not needed.

        Like a receptionist: a time or day said while the patient holds an appointment is a request to MOVE it,
        offered for a yes first (nothing moves unasked), unless they say it is another appointment; a time
        without am/pm is read inside bookable hours ("2:30" → 2:30 PM)."""
        when = parse_when(text, tz=session.tz, now=session.now)
        intent = detect_intent(text)
        pending = session.pending
        prefix = self._remember_name(session, text)
        another = bool(_ANOTHER.search(text))

        if _RECALL.search(text):
            name = session.state.get(NAME)
            return (
                _("Of course — you're {name}.").format(name=name)
                if name
                else _("I don't have your name yet — what should I call you?")
            )
        if intent == "start_fresh":
            return call_tool(session, "start_fresh").say
        if intent == "handoff":
            return call_tool(session, "handoff_to_human", {"reason": text[:300]}).say
        if intent == "link":
            return call_tool(session, "send_chat_link").say
        if intent == "callback":
            return call_tool(session, "request_callback", {"reason": text[:300]}).say
        if _WHEN_IS_MINE.search(text) and when.empty and intent not in ("cancel", "reschedule"):
            return prefix + call_tool(session, "my_appointments").say

        proposed = pending.get("intent") == "reschedule" and pending.get("confirm")
        held = pending.get("intent") == "book" and pending.get("date") and pending.get("time")
        if (proposed or held) and when.empty and intent != "cancel":
            if another and proposed:  # "it's another appointment": book the proposed time instead of moving
                return prefix + self._book(session, self._day(pending), self._time(pending), fresh=True)
            if _YES.search(text) or (held and intent == "book"):
                return prefix + call_tool(session, "confirm_change").say
            if _NO.search(text):
                return prefix + call_tool(session, "keep_appointment").say
        if intent == "cancel":
            return call_tool(session, "cancel_appointment").say
        if intent == "availability" and when.at is None:
            day = when.day or session.pending_day()
            if day is None:
                return prefix + _("Which day would you like me to check?")
            return prefix + call_tool(session, "list_availability", {"date": day.isoformat()}).say

        upcoming = session.upcoming()
        booking = pending.get("intent") == "book" or another
        if upcoming and not booking and (intent == "reschedule" or proposed or not when.empty):
            return prefix + self._reschedule(session, when)
        if intent == "reschedule" and not upcoming:
            return prefix + self._reschedule(session, when)
        if intent == "book" or booking or not when.empty:
            day = when.day
            return prefix + self._book(session, day, self._fit(session, when, day or session.pending_day()))
        if prefix:
            return prefix + _("How can I help today?")
        return _(
            "I can book, move or cancel appointments, arrange a call back, or connect you with our team. "
            "What would you like to do?"
        )

    @staticmethod
    def _day(pending: dict) -> date | None:
        return date.fromisoformat(pending["date"]) if pending.get("date") else None

    @staticmethod
    def _time(pending: dict) -> time | None:
        return time.fromisoformat(pending["time"]) if pending.get("time") else None

    @staticmethod
    def _fit(session: AgentSession, when: When, day: date | None) -> time | None:
        if when.at is None:
            return None
        return fit_hours(when.at, meridiem=when.meridiem, windows=session.bookable_windows(day))

    def _remember_name(self, session: AgentSession, text: str) -> str:
        match = _NAME.search(text)
        if not match or match.group(1).lower() in _NOT_NAMES:
            return ""
        name = match.group(1).capitalize()
        conv_services.state_set(conversation=session.conversation, key=NAME, value=name, at=session.now)
        session.state[NAME] = name
        session.actions.append("remember_name")
        return _("Thanks, {name}.").format(name=name) + " "

    def _book(self, session: AgentSession, day: date | None, at: time | None, fresh: bool = False) -> str:
        pending = {} if fresh else session.pending
        if pending.get("intent") != "book":
            pending = {}
        day = day or self._day(pending)
        at = at or self._time(pending)
        if day is None:
            call_tool(session, "note_booking_request", {"intent": "book", "time": at and at.strftime("%H:%M")})
            return _("I can book that for you. Which day suits you?")
        if at is None:
            call_tool(session, "note_booking_request", {"intent": "book", "date": day.isoformat()})
            slots = call_tool(session, "list_availability", {"date": day.isoformat()})
            if not slots.ok:
                return slots.say
            return _("What time on {day} suits you?").format(day=say_day(day)) + " " + slots.say
        return call_tool(session, "book_appointment", {"date": day.isoformat(), "time": at.strftime("%H:%M")}).say

    def _reschedule(self, session: AgentSession, when: When) -> str:
        """Offer to move the appointment (the pending proposal's, else the next one) to what ``when`` says,
        completed from the proposal or the appointment itself: "make it 3 PM" keeps the day, "move it to
        Friday" keeps the time."""
        upcoming = session.upcoming()
        if not upcoming:
            day = when.day
            at = self._fit(session, when, day)
            call_tool(session, "note_booking_request", {"intent": "book", "date": day and day.isoformat()})
            if day and at:
                return self._book(session, day, at)
            return _("I couldn't find an upcoming appointment to move — shall I book a new one? Which day suits you?")
        pending = session.pending if session.pending.get("intent") == "reschedule" else {}
        appt = next((a for a in upcoming if str(a.pk) == pending.get("appointment_id")), upcoming[0])
        current = session.local(appt.starts_at)
        if when.empty and not pending.get("date"):
            call_tool(session, "note_booking_request", {"intent": "reschedule"})
            return _("Sure — when would you like to move it to?")
        day = when.day or self._day(pending) or current.date()
        at = self._fit(session, when, day) or (self._time(pending) if pending.get("time") else None)
        if at is None:
            at = current.time().replace(tzinfo=None)  # a new day, the same time
        args = {"date": day.isoformat(), "time": at.strftime("%H:%M"), "appointment_id": str(appt.pk)}
        result = call_tool(session, "reschedule_appointment", args)
        if not result.ok and when.at is None and result.data.get("error") in ("taken", "outside_hours"):
            return _("What time on {day} would you like instead?").format(day=say_day(day)) + " " + result.say
        return result.say
