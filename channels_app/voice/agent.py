"""The VoiceAgent: one Twilio call, turn by turn, through the same engine as every other channel.

A call is one ``call_logs`` row (channel ``voice``), opened once per ``CallSid``. Every sentence — what we
say and what the caller says — is appended to its transcript as it happens, and whatever the engine learns
(name, pending booking) lives in the conversation's :class:`SessionState`, so a call that drops mid-way loses
nothing: the next session on any channel greets with what was pending.

Turn ``N`` is the caller's ``N``-th answer; the Gather action URL carries it (``?turn=N``), so a replayed
action (Twilio retrying a request that timed out) is answered with the reply already given instead of a
second engine turn. When the engine's turn handed off to a human (``handoff_to_human``) while the clinic is open
and a front-desk number is configured, the call is transferred there (:mod:`channels_app.voice.transfer`).
Every turn is also assessed for urgency (see :mod:`channels_app.voice.assess`); at the
emergency level the caller hears that help is being reached, the row is marked escalated and
``escalation_requested`` is sent on commit (the escalation app raises the incident).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from channels_app.voice import hours, transfer, twiml
from channels_app.voice.assess import Assessment, assess
from conversations import engine, selectors
from conversations.models import Channel, ChannelMessage, Direction, Interaction
from conversations.services import (
    call_open,
    interaction_append_turn,
    interaction_mark_escalated,
    interaction_set_assessment,
    interaction_set_metadata,
)
from conversations.signals import customer_message_received, escalation_requested
from identity.models import Tenant
from identity.normalize import normalize_phone
from identity.services import customer_resolve

logger = logging.getLogger(__name__)

EMERGENCY_REPLY = (
    "This sounds like an emergency. If anyone is in danger, hang up and call 911 now. I am alerting our "
    "on-call clinician right away and they will call you back on this number."
)
EMERGENCY_FOLLOW_UP = "If you can, stay on the line and tell me anything else the clinician should know."
REPROMPT = "Sorry, I didn't catch that. How can I help you?"
VOICEMAIL_PROMPT = "Please leave a message after the tone, and press the pound key when you're done."
NO_INPUT_VOICEMAIL = "I still can't hear you. If you'd like, leave a message after the tone."
GOODBYE = "Thank you for calling {name}. Goodbye."
ERROR_GOODBYE = "Sorry, something went wrong on our side. Please call again. Goodbye."

_GOODBYE = re.compile(
    r"^\W*(no[,.]?\s*)?(that'?s (all|it|everything)|(good)?bye|bye[- ]bye|nothing else|no,? thanks?( you)?|"
    r"i'?m (all )?(done|good))\b", re.IGNORECASE)
_VOICEMAIL = re.compile(r"\b(leave (a |an )?(message|voicemail|voice mail)|voicemail|voice mail)\b", re.IGNORECASE)
_SMS_ONLY = re.compile(r"[^.!?]*\b(reply|text) (STOP|HELP|START)\b[^.!?]*[.!?]?", re.IGNORECASE)
_MAX_NO_INPUT_REPROMPTS = 1


class InvalidCall(ValueError):
    """The webhook lacks what a call must have (a CallSid)."""


@dataclass
class Call:
    """One of our calls: its ChannelMessage (``provider_id`` = CallSid, ``status``) and its ``call_logs`` row."""

    message: ChannelMessage
    interaction: Interaction

    @property
    def sid(self) -> str:
        return self.message.provider_id


def speakable(text: str) -> str:
    """The engine's reply as something to say: SMS-only instructions ("Reply STOP…") removed."""
    spoken = _SMS_ONLY.sub("", text or "").strip()
    return re.sub(r"\s{2,}", " ", spoken) or "Sorry, could you say that again?"


def call_find(*, tenant: Tenant, call_sid: str) -> Call | None:
    """Our call ``call_sid`` of ``tenant`` (tenant-scoped: another tenant's SID is None)."""
    message = (ChannelMessage.objects.select_related("interaction__tenant", "interaction__conversation",
                                                     "interaction__customer")
               .filter(tenant=tenant, channel=Channel.VOICE, provider_id=call_sid).first()) if call_sid else None
    return Call(message=message, interaction=message.interaction) if message else None


def greeting_for(interaction: Interaction, *, after_hours: bool) -> str:
    """The opening line, aware of the conversation's prior context: the engine's continuity greeting
    (``conversations.engine.greet``: what is pending, the next appointment), else what session state says."""
    greet = getattr(engine, "greet", None)
    if greet is not None:
        text = greet(interaction=interaction).text
    else:
        state = selectors.state_get_all(conversation=interaction.conversation)
        name = state.get("name")
        text = (f"Welcome back{', ' + name if name else ''}! How can {interaction.tenant.short_name} help today?"
                if state else f"Thanks for calling {interaction.tenant.short_name}. How can I help you today?")
    if after_hours:
        text = (f"Our office is closed right now, but I can still help, or say 'leave a message' for a "
                f"voicemail. {text}")
    return speakable(text)


def _caller(tenant: Tenant, params: Mapping[str, str]):
    """The customer behind this call: the caller for inbound calls, the callee for calls we placed. Callers
    without a usable number (anonymous, restricted) get a customer of their own for this call."""
    outbound = (params.get("Direction") or "inbound").startswith("outbound")
    phone = normalize_phone(params.get("To") if outbound else params.get("From"), tenant.country)
    if phone:
        return customer_resolve(tenant=tenant, phone=phone, verified_kinds=("phone",)).customer, phone
    return customer_resolve(tenant=tenant, cookie=f"call:{params['CallSid']}").customer, ""


def call_answer(*, tenant: Tenant, params: Mapping[str, str]) -> str:
    """Handle Twilio's incoming-call webhook: open the call once per CallSid and answer with the greeting.

    Returns TwiML: the greeting inside a speech ``<Gather>`` for turn 1. A repeated CallSid (Twilio retrying)
    opens nothing and answers with the greeting already given. Raises :class:`InvalidCall` without CallSid.
    """
    sid = params.get("CallSid", "")
    if not sid:
        raise InvalidCall("CallSid is required")
    with transaction.atomic():
        customer, phone = _caller(tenant, params)
        received = call_open(
            tenant=tenant, customer=customer, call_sid=sid, sender=phone or params.get("From", "")[:320],
            recipient=params.get("To", ""), status=params.get("CallStatus") or "ringing",
            direction=Direction.INBOUND, metadata={"call_status": params.get("CallStatus") or "ringing"},
        )
        interaction = received.interaction
        if received.duplicate:
            logger.info("duplicate incoming-call webhook %s: answering with the same greeting", sid)
            said = [t["text"] for t in interaction.transcript if t.get("role") == "agent"]
            return twiml.gather(said[0] if said else REPROMPT, turn=_turns_heard(interaction) + 1)
        text = greeting_for(interaction, after_hours=hours.is_after_hours(tenant, timezone.now()))
        interaction_append_turn(interaction=interaction, role="agent", text=text, event="greeting")
    return twiml.gather(text, turn=1)


def _turns_heard(interaction: Interaction) -> int:
    return int((interaction.metadata or {}).get("turns_heard", 0))


def _escalate(interaction: Interaction, assessment: Assessment) -> None:
    """Mark the row escalated and, on commit, ask the escalation app for an incident (once per interaction)."""
    if interaction.escalated:
        return
    interaction_mark_escalated(interaction=interaction)
    interaction_id, level, reason = interaction.pk, assessment.urgency, assessment.reason or "urgent"
    transaction.on_commit(lambda: escalation_requested.send(
        sender=Interaction, interaction_id=interaction_id, urgency=level, reason=reason))


def call_turn(*, tenant: Tenant, params: Mapping[str, str], turn: int) -> str:
    """Handle a Gather action (the caller's speech for ``turn``); return the TwiML of our answer.

    The caller's words and our answer are appended to the transcript; the turn is assessed for urgency; the
    caller may ask for voicemail or say goodbye; a handoff to a human during opening hours transfers the call
    (``<Dial>`` to ``AgentSettings.handoff_number``, see :mod:`channels_app.voice.transfer`). Runs under a row
    lock on the call's ``call_logs`` row, so a replayed action waits for the first and then gets the same answer.
    """
    call = call_find(tenant=tenant, call_sid=params.get("CallSid", ""))
    if call is None:
        logger.warning("speech for an unknown call %s", params.get("CallSid"))
        return twiml.goodbye(ERROR_GOODBYE)
    text = (params.get("SpeechResult") or "").strip()
    if not text:
        return call_no_input(tenant=tenant, params=params, turn=turn, attempt=1)
    with transaction.atomic():
        interaction = Interaction.objects.select_for_update().select_related(
            "tenant", "customer", "conversation").get(pk=call.interaction.pk)
        if turn <= _turns_heard(interaction):
            said = [t for t in interaction.transcript if t.get("role") == "agent" and t.get("turn") == turn]
            logger.info("replayed Gather action %s turn %s", call.sid, turn)
            if said and said[-1].get("event") == "transfer":
                return transfer.transfer_document(interaction=interaction)
            return twiml.gather(said[-1]["text"] if said else REPROMPT, turn=_turns_heard(interaction) + 1)
        interaction_append_turn(interaction=interaction, role="customer", text=text, ref=f"{call.sid}:{turn}",
                                turn=turn, confidence=params.get("Confidence", ""))
        interaction_id, message_id = interaction.pk, call.message.pk
        transaction.on_commit(lambda: customer_message_received.send(
            sender=Interaction, interaction_id=interaction_id, message_id=message_id, text=text))
        assessment = assess(tenant=tenant, text=text)
        interaction_set_assessment(interaction=interaction, urgency=assessment.urgency)
        interaction_set_metadata(interaction=interaction, updates={"turns_heard": turn})
        actions: list[str] = []
        if assessment.is_emergency:
            _escalate(interaction, assessment)
            reply, event = f"{EMERGENCY_REPLY} {EMERGENCY_FOLLOW_UP}", "emergency"
            document = twiml.gather(reply, turn=turn + 1)
        elif _VOICEMAIL.search(text):
            reply, event = VOICEMAIL_PROMPT, "voicemail"
            document = twiml.voicemail(reply, transcribe=not _stt_configured())
        elif _GOODBYE.search(text):
            reply, event = GOODBYE.format(name=tenant.short_name), "goodbye"
            document = twiml.goodbye(reply)
            interaction_set_metadata(interaction=interaction, updates={"ended_by": "agent"})
        else:
            answer = engine.respond(interaction=interaction, text=text)
            actions = list(answer.actions)
            number = transfer.transfer_number(tenant=tenant, interaction=interaction, actions=actions)
            if number:
                reply, event = transfer.TRANSFER_LINE, "transfer"
                document = transfer.transfer_start(interaction=interaction, params=params, number=number, turn=turn)
            else:
                reply, event = speakable(answer.text), "reply"
                document = twiml.gather(reply, turn=turn + 1)
        extra = {"actions": actions} if actions else {}
        interaction_append_turn(interaction=interaction, role="agent", text=reply, turn=turn, event=event, **extra)
    return document


def call_no_input(*, tenant: Tenant, params: Mapping[str, str], turn: int, attempt: int) -> str:
    """A Gather heard nothing (``attempt`` = consecutive silences): re-prompt once, then offer voicemail."""
    call = call_find(tenant=tenant, call_sid=params.get("CallSid", ""))
    if call is None:
        return twiml.goodbye(ERROR_GOODBYE)
    if attempt <= _MAX_NO_INPUT_REPROMPTS:
        interaction_append_turn(interaction=call.interaction, role="agent", text=REPROMPT, event="no_input")
        return twiml.gather(REPROMPT, turn=turn, no_input=attempt)
    if attempt == _MAX_NO_INPUT_REPROMPTS + 1:
        interaction_append_turn(interaction=call.interaction, role="agent", text=NO_INPUT_VOICEMAIL, event="voicemail")
        return twiml.voicemail(NO_INPUT_VOICEMAIL, transcribe=not _stt_configured())
    goodbye = GOODBYE.format(name=tenant.short_name)
    interaction_append_turn(interaction=call.interaction, role="agent", text=goodbye, event="goodbye")
    return twiml.goodbye(goodbye)


def call_voicemail(*, tenant: Tenant, params: Mapping[str, str]) -> str:
    """Go straight to voicemail (the number's fallback, or a ``<Dial>`` that was not answered).

    Opens the call if this is the first we hear of it (once per CallSid, like :func:`call_answer`).
    """
    sid = params.get("CallSid", "")
    if not sid:
        raise InvalidCall("CallSid is required")
    call = call_find(tenant=tenant, call_sid=sid)
    with transaction.atomic():
        if call is None:
            customer, phone = _caller(tenant, params)
            interaction = call_open(
                tenant=tenant, customer=customer, call_sid=sid, sender=phone or params.get("From", "")[:320],
                recipient=params.get("To", ""), status=params.get("CallStatus") or "in-progress",
                metadata={"call_status": params.get("CallStatus") or "in-progress"},
            ).interaction
        else:
            interaction = call.interaction
        prompt = f"Thank you for calling {tenant.short_name}. {VOICEMAIL_PROMPT}"
        interaction_append_turn(interaction=interaction, role="agent", text=prompt, event="voicemail")
    return twiml.voicemail(prompt, transcribe=not _stt_configured())


def call_voicemail_done(*, tenant: Tenant, params: Mapping[str, str]) -> str:
    """The ``<Record>`` action: thank the caller and hang up (the recording arrives by its own callback)."""
    call = call_find(tenant=tenant, call_sid=params.get("CallSid", ""))
    text = f"Thank you, your message has been recorded. {GOODBYE.format(name=tenant.short_name)}"
    if call is not None:
        interaction_append_turn(interaction=call.interaction, role="agent", text=text, event="goodbye")
        interaction_set_metadata(interaction=call.interaction, updates={"ended_by": "agent"})
    return twiml.goodbye(text)


def _stt_configured() -> bool:
    from channels_app.voice.voicemail import stt_configured

    return stt_configured()
