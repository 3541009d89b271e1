"""The OpenAI-compatible backend: chat completions with tool calling, through the official ``openai`` client.

Works with any server that speaks the Chat Completions API (``OPENAI_BASE_URL``; key ``OPENAI_API_KEY``;
model ``AGENT_MODEL``, default ``OPENAI_MODEL``). The system prompt carries the tenant's persona and policies,
the local date and time in the tenant's time zone, the remembered state and upcoming appointments; the
conversation's last ``AgentSettings.history_turns`` turns across channels come as messages. Tool calls run
the same tools as the local backend (:mod:`conversations.agent.tools`); the loop stops after
``MAX_TOOL_ROUNDS`` rounds. API errors raise :class:`BackendUnavailable` so the engine can fall back.
Reference: https://platform.openai.com/docs/guides/function-calling
"""

from __future__ import annotations

import json
import logging
import time

import openai
from django.conf import settings
from django.utils.translation import get_language

from conversations.agent.dates import say_when
from conversations.agent.session import AgentSession
from conversations.agent.tools import TOOL_SCHEMAS, call_tool
from conversations.llm_client import openai_client

logger = logging.getLogger(__name__)
MAX_TOOL_ROUNDS = 4
MIN_REQUEST_SECONDS = 0.5  # less time than this left: don't start another LLM request
ROLE_MAP = {"customer": "user", "agent": "assistant", "staff": "assistant"}


class BackendUnavailable(RuntimeError):
    """The LLM could not answer (network, timeout, HTTP error, malformed answer)."""


_LANGUAGE_NAMES = {"en": "English", "es": "Spanish"}


def system_prompt(session: AgentSession) -> str:
    """The system message: persona, policies, clock, memory, appointments, hours and tool conventions."""
    tenant, s = session.tenant, session.settings
    local_now = session.local(session.now)
    upcoming = [f"- {a.pk}: {say_when(session.local(a.starts_at))}" for a in session.upcoming()]
    hours = "; ".join(
        f"{d}: " + (", ".join(f"{a}-{b}" for a, b in w) or "closed") for d, w in (s.bookable_hours or {}).items()
    )
    return "\n".join(
        [
            s.persona.strip(),
            f"Clinic: {tenant.name} ({tenant.short_name}). Channel: {session.channel}.",
            f"Policies: {s.policies.strip()}",
            f"Now: {local_now:%A %Y-%m-%d %H:%M} ({tenant.timezone}). All dates and times you pass to tools are "
            "local to this time zone: date YYYY-MM-DD, time HH:MM (24-hour).",
            f"Bookable hours: {hours}; slots of {s.slot_minutes} minutes.",
            (
                f"Remembered from earlier in this conversation (any channel): {json.dumps(session.state, default=str)}"
                if session.remembers
                else f"Remembered from this session (the patient opted out of memory across channels): "
                f"{json.dumps(session.state, default=str)}"
            ),
            "Upcoming appointments:\n" + ("\n".join(upcoming) or "none"),
            "When the customer gives a day but no time, call note_booking_request so another channel can continue. "
            "One request at a time: if the customer already has an appointment, a new day or time means MOVING it "
            "(reschedule_appointment proposes; call confirm_change only after they say yes) unless they say it is "
            "another appointment. A time without am/pm is the one inside bookable hours (2:30 is 14:30). "
            "Keep replies short (they may be sent by SMS). Never include links or medical advice.",
            f"Answer in {_LANGUAGE_NAMES.get(get_language() or 'en', 'English')}, the patient's language, unless "
            "they ask for another (tool results may be in it already).",
        ]
    )


def history_messages(session: AgentSession, text: str) -> list[dict]:
    """The last turns across channels (this session's only, for a patient who opted out of memory) as chat
    messages, ending with the customer's current ``text``."""
    turns = session.turns(session.settings.history_turns)
    if turns and turns[-1].get("role") == "customer" and turns[-1].get("text") == text:
        turns = turns[:-1]
    messages = [
        {"role": ROLE_MAP[t["role"]], "content": t.get("text", "")}
        for t in turns
        if t.get("role") in ROLE_MAP and t.get("text")
    ]
    return [*messages, {"role": "user", "content": text}]


def make_client() -> openai.OpenAI:
    """The agent's client: ``OPENAI_TIMEOUT_SECONDS``, one client-side retry (the turn's deadline bounds it)."""
    return openai_client(max_retries=1)


class OpenAIBackend:
    """Tool-calling agent over the Chat Completions API; see the module docstring."""

    name = "openai"

    def __init__(self, client: openai.OpenAI | None = None, model: str | None = None):
        self.client = client or make_client()
        self.model = model or getattr(settings, "AGENT_MODEL", "") or settings.OPENAI_MODEL

    def respond(self, session: AgentSession, text: str, deadline: float | None = None) -> str:
        """Run the tool-call loop for ``text``; returns the assistant's final words.

        ``deadline`` (``time.monotonic()`` seconds): each request gets only the time left, without client
        retries. When it runs out after a tool already acted, the tool's own sentence is the answer (a booking
        made is never made again by a fallback); before any tool acted, :class:`BackendUnavailable` is raised
        and the engine answers with the local backend.
        """
        messages: list[dict] = [{"role": "system", "content": system_prompt(session)}, *history_messages(session, text)]
        tool_said = ""
        for _ in range(MAX_TOOL_ROUNDS):
            client = self.client
            if deadline is not None:
                left = deadline - time.monotonic()
                if left < MIN_REQUEST_SECONDS:
                    if tool_said:
                        return tool_said
                    raise BackendUnavailable("time budget spent")
                client = client.with_options(timeout=left, max_retries=0)
            try:
                completion = client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    tools=TOOL_SCHEMAS,
                    tool_choice="auto",
                    temperature=0.2,
                )
                message = completion.choices[0].message
            except (openai.OpenAIError, IndexError, AttributeError) as exc:
                if tool_said:  # a tool acted already: its sentence stands; a fallback must not act again
                    return tool_said
                raise BackendUnavailable(str(exc)) from exc
            if not message.tool_calls:
                return (message.content or "").strip() or "Sorry, could you say that again?"
            messages.append(
                {
                    "role": "assistant",
                    "content": message.content or "",
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.function.name, "arguments": c.function.arguments},
                        }
                        for c in message.tool_calls
                    ],
                }
            )
            for call in message.tool_calls:
                try:
                    args = json.loads(call.function.arguments or "{}")
                except json.JSONDecodeError:
                    args = None
                if not isinstance(args, dict):
                    result = {"ok": False, "error": "arguments must be a JSON object"}
                else:
                    outcome = call_tool(session, call.function.name, args)
                    result = {"ok": outcome.ok, "message": outcome.say, **outcome.data}
                    tool_said = outcome.say or tool_said
                messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result, default=str)})
        logger.warning("agent tool loop hit %s rounds", MAX_TOOL_ROUNDS)
        raise BackendUnavailable("too many tool rounds")
