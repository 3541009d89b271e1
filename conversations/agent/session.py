"""An agent session: who is talking, on which channel, what the conversation remembers, and the greeting.

Continuity: a session opened on any channel sees the conversation's unexpired :class:`SessionState` (expired
rows are never read, see ``conversations.selectors.state_get_all``) and the last turns across channels, and
greets with what was pending ("Welcome back — you were booking for Tuesday, November 24; what time suits you?").
A patient who opted out of that memory (``Customer.memory_opt_out``) is not remembered across channels: the
session sees only the state written and the turns said in this session (this call, chat, SMS exchange), and
is greeted as a first contact. Their appointments are still theirs to move or cancel.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.utils import timezone
from django.utils.translation import gettext as _

from conversations import selectors
from conversations.agent.dates import say_day, say_when
from conversations.appointments import WEEKDAYS, agent_settings_for, upcoming_for_customer
from conversations.models import AgentSettings, Appointment, Interaction

# State key of the ONE pending request of a conversation (a single SessionState row, unique per conversation and
# key): {"intent": "book"|"reschedule", "date": "YYYY-MM-DD"|None, "time": "HH:MM"|None} plus, while a change
# waits for the patient's yes, "confirm": True, "appointment_id" (the booking to move) and "proposed_in" (the
# turn that proposed it: the same turn can never confirm its own proposal).
PENDING = "pending"
NAME = "name"


@dataclass
class AgentSession:
    """One turn's view of the world. ``state`` is the unexpired session state (empty when the person on a
    shared phone said they are someone else); ``actions`` collects the tools run this turn."""

    interaction: Interaction
    now: datetime
    state: dict
    settings: AgentSettings
    actions: list[str] = field(default_factory=list)
    turn_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def tenant(self):
        return self.interaction.tenant

    @property
    def customer(self):
        return self.interaction.customer

    @property
    def conversation(self):
        return self.interaction.conversation

    @property
    def channel(self) -> str:
        return self.interaction.channel

    @property
    def tz(self) -> str:
        return self.tenant.timezone

    @property
    def identity(self) -> str | None:
        """``"asked"``, ``"confirmed"``, ``"other"`` or None (no identity check in this session)."""
        return (self.interaction.workflow or {}).get("identity")

    @property
    def remembers(self) -> bool:
        """False when the patient opted out of cross-channel memory: only this session's turns and state."""
        return not self.customer.memory_opt_out

    def turns(self, limit: int) -> list[dict]:
        """The last ``limit`` turns the agent may use: across channels, or this session's when not remembering."""
        only = None if self.remembers else self.interaction
        return selectors.recent_turns(conversation=self.conversation, limit=limit, interaction=only)

    @property
    def pending(self) -> dict:
        return dict(self.state.get(PENDING) or {})

    def pending_day(self) -> date | None:
        value = self.pending.get("date")
        return date.fromisoformat(value) if value else None

    def upcoming(self) -> list[Appointment]:
        if self.identity == "other":
            return []
        return list(upcoming_for_customer(customer=self.customer, now=self.now)[:5])

    def local(self, value: datetime) -> datetime:
        return value.astimezone(self.tenant.tzinfo)

    def bookable_windows(self, day: date | None = None) -> list[tuple[time, time]]:
        """The bookable hours of local ``day`` (every day's when None) as wall-clock ``[start, end)`` pairs."""
        hours = self.settings.bookable_hours or {}
        days = [WEEKDAYS[day.weekday()]] if day else list(hours)
        out = []
        for name in days:
            for start, end in hours.get(name, []):
                out.append((time.fromisoformat(start), time.max if end == "24:00" else time.fromisoformat(end)))
        return out


def session_for(*, interaction: Interaction, now: datetime | None = None) -> AgentSession:
    """Build the session of ``interaction`` (its tenant, customer and conversation loaded)."""
    now = now or timezone.now()
    if not hasattr(interaction, "_agent_loaded"):
        interaction = Interaction.objects.select_related("tenant", "customer", "conversation").get(pk=interaction.pk)
        interaction._agent_loaded = True
    since = interaction.started_at if interaction.customer.memory_opt_out else None
    state = selectors.state_get_all(conversation=interaction.conversation, now=now, since=since)
    if (interaction.workflow or {}).get("identity") == "other":
        state = {}
    return AgentSession(interaction=interaction, now=now, state=state, settings=agent_settings_for(interaction.tenant))


def continuity_greeting(session: AgentSession, *, anonymous: bool = False) -> str:
    """The opening line of a session, aware of what is pending in the conversation.

    ``anonymous`` (a chat visitor not yet recognised) adds an invitation to give a phone number or email so
    the agent can pick up an earlier conversation.
    """
    tenant = session.tenant
    if not session.remembers:
        return (
            f"Hi! Thanks for contacting {tenant.short_name}. I can book, move or cancel appointments, arrange a "
            "call back or connect you with our team. How can I help?"
        )
    name = session.state.get(NAME) or ""
    pending = session.pending
    hello = _("Welcome back, {name}").format(name=name) if name else _("Welcome back")
    if pending.get("intent") in ("book", "reschedule"):
        verb = _("booking") if pending["intent"] == "book" else _("moving your appointment")
        day = session.pending_day()
        if day and pending.get("time"):
            return _("{hello} — you were {verb} for {day}. Shall I go ahead, or would another time suit you?").format(
                hello=hello, verb=verb, day=say_day(day)
            )
        if day:
            return _("{hello} — you were {verb} for {day}; what time suits you?").format(
                hello=hello, verb=verb, day=say_day(day)
            )
        return _("{hello} — you were {verb}; which day suits you?").format(hello=hello, verb=verb)
    upcoming = session.upcoming()
    if upcoming:
        when = say_when(session.local(upcoming[0].starts_at))
        return _("{hello}! Your next appointment is on {when}. How can I help today?").format(hello=hello, when=when)
    if anonymous:
        return _(
            "Hi! This is {clinic}. I can book, move or cancel appointments, arrange a call back "
            "or connect you with our team. If you've been in touch before, tell me your phone number or "
            "email and I'll pick up where we left off."
        ).format(clinic=tenant.short_name)
    has_history = bool(session.turns(2)) and bool(session.state)
    if has_history:
        return _("{hello}! How can {clinic} help today?").format(hello=hello, clinic=tenant.short_name)
    return _(
        "Hi{name}! Thanks for contacting {clinic}. I can book, move or "
        "cancel appointments, arrange a call back or connect you with our team. How can I help?"
    ).format(name=" " + name if name else "", clinic=tenant.short_name)
