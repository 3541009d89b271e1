"""The conversation engine's entry point for channels: one turn in, one reply out, on every channel.

Safety before service: every customer turn is triaged first (:mod:`conversations.triage`: the rules, plus the
LLM's second opinion within the caller's deadline when configured). An emergency gets the safety reply (911 /
988 / Poison Control, in the patient's language) instead of anything from the agent that turn, and
``escalation_requested`` goes out on commit (escalation pages after hours or alerts staff in opening hours,
at most once per interaction). Otherwise the agent answers:
``respond(interaction=…, text=…) -> Reply(text, actions, triage)``; ``greet(interaction=…)`` gives the opening
line of a new session, aware of what is pending in the conversation (continuity across channels).
"""

from __future__ import annotations

import time
from dataclasses import replace

from django.db import transaction

from conversations import triage
from conversations.agent.engine import Reply, greet, turn
from conversations.models import Interaction
from conversations.signals import escalation_requested
from conversations.triage.records import triage_record
from conversations.triage.service import TriageResult

__all__ = ["Reply", "greet", "respond", "triage_turn"]

SAFETY_ACTION = "safety_reply"


def triage_turn(*, interaction: Interaction, text: str, deadline: float | None = None) -> TriageResult:
    """Triage the customer's ``text`` in ``interaction`` (LLM bounded by ``deadline``, a ``time.monotonic()``
    value), store the decision and the row's urgency, and on an emergency request escalation on commit."""
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    tenant = interaction.tenant
    result = triage.assess(
        text,
        phrases=tenant.emergency_phrases or [],
        timeout=timeout,
        use_llm=False if tenant.llm_forbidden else None,  # rules only for a clinic that forbids LLMs
    )
    triage_record(interaction=interaction, channel=interaction.channel, result=result)
    if result.is_emergency:
        interaction_id, reason = interaction.pk, result.reason or "emergency"
        transaction.on_commit(
            lambda: escalation_requested.send(
                sender=Interaction, interaction_id=interaction_id, urgency=5, reason=reason
            ),
            robust=True,
        )
    return result


def respond(
    *, interaction: Interaction, text: str, deadline: float | None = None, assessed: TriageResult | None = None
) -> Reply:
    """Answer ``text`` in ``interaction``'s conversation; reads and writes session state, runs tools.

    ``deadline`` (a ``time.monotonic()`` value) bounds the LLM: a caller on the phone cannot wait past Twilio's
    15 s webhook timeout. ``assessed`` is a triage the channel already ran for this text (not repeated). An
    emergency returns the safety reply with action ``safety_reply`` and the agent is not asked.
    """
    result = assessed or triage_turn(interaction=interaction, text=text, deadline=deadline)
    if result.is_emergency:
        body = triage.safety_reply(result, clinic=interaction.tenant.short_name)
        return Reply(body, [SAFETY_ACTION], triage=result)
    return replace(turn(interaction=interaction, text=text, deadline=deadline), triage=result)
