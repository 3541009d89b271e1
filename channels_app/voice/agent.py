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

No lock is held while the LLM thinks (Twilio waits 15 s for a webhook, and the status callback, the voicemail
fallback and the patient's other channels must not wait on the call's rows). A turn is a claim
(:mod:`identity.leases`): a short locked transaction appends the caller's words and marks the turn in progress
(``workflow["turn_in_progress"] = {"turn", "token", "started_at"}``, leased from ``started_at``); the urgency
check and the engine run outside any transaction; a second short locked transaction, only while the token is
still ours, appends the reply, starts the transfer or escalates, and sets ``turns_heard``. A replay of turn
``N`` that arrives meanwhile hears a ``<Pause>`` and is redirected to the same Gather URL until the answer is
stored. ``VOICE_TURN_BUDGET_SECONDS`` (default 8 s) caps the urgency check's LLM timeout; a turn still in
progress after :data:`STALE_AFTER_BUDGETS` budgets is given up (the caller is asked to repeat, and the late answer is dropped: its token no longer
matches). Silence, voicemail and goodbye turns carry a ``ref`` (``CallSid:route:counter``), so a replayed request
appends them once.

A caller who hangs up while a turn is answered does not close the row under it: the status callback records
the end and leaves the close to the turn (:mod:`channels_app.voice.lifecycle`), so the turn's last step — or its
give-up, or the clean-up after an engine error — closes the row once the transcript is complete.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channels_app.voice import hours, transfer, twiml
from channels_app.voice.assess import Assessment, assess
from conversations import engine, selectors
from conversations.models import Channel, ChannelMessage, Direction, Interaction
from conversations.services import (
    call_open,
    interaction_append_turn,
    interaction_append_turn_once,
    interaction_mark_escalated,
    interaction_set_assessment,
    interaction_set_metadata,
    interaction_set_workflow,
)
from conversations.signals import customer_message_received, escalation_requested
from conversations.triage import safety_reply
from conversations.triage.records import triage_record
from identity import leases
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
TURN_LOST = "Sorry, that took too long on our side. Could you say that again?"
ERROR_GOODBYE = "Sorry, something went wrong on our side. Please call again. Goodbye."

_GOODBYE = re.compile(
    r"^\W*(no[,.]?\s*)?(that'?s (all|it|everything)|(good)?bye|bye[- ]bye|nothing else|no,? thanks?( you)?|"
    r"i'?m (all )?(done|good))\b",
    re.IGNORECASE,
)
_VOICEMAIL = re.compile(r"\b(leave (a |an )?(message|voicemail|voice mail)|voicemail|voice mail)\b", re.IGNORECASE)
_SMS_ONLY = re.compile(r"[^.!?]*\b(reply|text) (STOP|HELP|START)\b[^.!?]*[.!?]?", re.IGNORECASE)
_MAX_NO_INPUT_REPROMPTS = 1

#: workflow key of the call's row while the engine answers a turn: ``{"turn": N, "token": hex, "started_at": ISO}``
IN_PROGRESS = "turn_in_progress"
#: a turn still in progress after this many ``VOICE_TURN_BUDGET_SECONDS`` is given up (its worker died or hangs)
STALE_AFTER_BUDGETS = 3


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
    message = (
        (
            ChannelMessage.objects.select_related(
                "interaction__tenant", "interaction__conversation", "interaction__customer"
            )
            .defer("interaction__transcript")  # a turn reads it under the row lock (_locked), not here
            .filter(tenant=tenant, channel=Channel.VOICE, provider_id=call_sid)
            .first()
        )
        if call_sid
        else None
    )
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
        text = (
            f"Welcome back{', ' + name if name else ''}! How can {interaction.tenant.short_name} help today?"
            if state
            else f"Thanks for calling {interaction.tenant.short_name}. How can I help you today?"
        )
    if after_hours:
        text = f"Our office is closed right now, but I can still help, or say 'leave a message' for a voicemail. {text}"
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
            tenant=tenant,
            customer=customer,
            call_sid=sid,
            sender=phone or params.get("From", "")[:320],
            recipient=params.get("To", ""),
            status=params.get("CallStatus") or "ringing",
            direction=Direction.INBOUND,
            metadata={"call_status": params.get("CallStatus") or "ringing"},
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
    return int((interaction.workflow or {}).get("turns_heard", 0))


def _in_progress(interaction: Interaction) -> dict:
    return (interaction.workflow or {}).get(IN_PROGRESS) or {}


def _locked(call: Call) -> Interaction:
    """The call's ``call_logs`` row, locked until the surrounding transaction ends. Only that row: ``of=("self",)``
    keeps the joined tenant, customer and conversation rows unlocked. Read fresh in this request with what the
    agent's session needs, so the engine's turn uses it as is (``_agent_loaded``: no second read)."""
    interaction = (
        Interaction.objects.select_for_update(of=("self",))
        .select_related("tenant", "customer", "conversation")
        .get(pk=call.interaction.pk)
    )
    interaction._agent_loaded = True  # type: ignore[attr-defined]  # see conversations.agent.session.session_for
    return interaction


def _append_once(*, interaction: Interaction, ref: str, role: str, text: str, **extra) -> bool:
    """Append a transcript turn keyed by ``ref`` unless a turn with that ``ref`` is already there (a replayed
    webhook); True if appended. One conditional statement (the check under its row lock; see
    :func:`conversations.services.interaction_append_turn_once`)."""
    return interaction_append_turn_once(interaction=interaction, ref=ref, role=role, text=text, **extra) is not None


def _escalate(interaction: Interaction, assessment: Assessment) -> None:
    """Mark the row escalated and, on commit, ask the escalation app for an incident (once per interaction)."""
    if interaction.escalated:
        return
    interaction_mark_escalated(interaction=interaction)
    interaction_id, level, reason = interaction.pk, assessment.urgency, assessment.reason or "urgent"
    transaction.on_commit(
        lambda: escalation_requested.send(
            sender=Interaction, interaction_id=interaction_id, urgency=level, reason=reason
        )
    )


def _safety_line(tenant: Tenant, assessment: Assessment) -> str:
    """The triage safety reply (911 / 988 / Poison Control) spoken in the call's voice language (the TTS voice
    reads one language; other languages hear the English line), or :data:`EMERGENCY_REPLY`."""
    result = assessment.result
    if result is None:
        return EMERGENCY_REPLY
    if result.language != settings.VOICE_LANGUAGE[:2].lower():
        result = replace(result, language="en")
    return safety_reply(result, clinic=tenant.short_name, after_hours=None)


def turn_live(interaction: Interaction, now: datetime) -> bool:
    """True while a turn is being answered on the call's row and is not stale (see :func:`_is_stale`); read it
    under the row lock to order against the turn's steps."""
    marker = _in_progress(interaction)
    return bool(marker) and not _is_stale(marker, now)


def _close_if_ended(call: Call, interaction: Interaction) -> None:
    """After a turn's last write (its in-progress mark cleared), under the row lock: close the row if the caller
    hung up meanwhile — the status callback recorded the end and left the close to us."""
    from channels_app.voice.lifecycle import call_close_ended

    call_close_ended(interaction=interaction, sid=call.sid)


def _turn_budget() -> float:
    """Seconds one caller turn may take (``VOICE_TURN_BUDGET_SECONDS``)."""
    return float(settings.VOICE_TURN_BUDGET_SECONDS)


def _is_stale(marker: dict, now: datetime) -> bool:
    """True when the in-progress ``marker`` is older than :data:`STALE_AFTER_BUDGETS` turn budgets (or unreadable)."""
    try:
        started = datetime.fromisoformat(marker["started_at"])
    except (KeyError, TypeError, ValueError):
        return True
    return not leases.live_since(started, timedelta(seconds=STALE_AFTER_BUDGETS * _turn_budget()), now)


def _answer_document(interaction: Interaction, turn: int) -> str:
    """The TwiML of answered turn ``turn``, rebuilt from its stored agent turn, so a replay hears what the first
    request heard: the transfer's current state, the voicemail recording, the goodbye, or the reply in a Gather
    for the next turn (:data:`REPROMPT` if nothing was stored)."""
    said = [t for t in interaction.transcript if t.get("role") == "agent" and t.get("turn") == turn]
    last = said[-1] if said else {}
    event, text = last.get("event"), last.get("text") or REPROMPT
    if event == "transfer":
        return transfer.transfer_document(interaction=interaction)
    if event == "voicemail":
        return twiml.voicemail(text, transcribe=not _stt_configured(interaction.tenant))
    if event == "goodbye":
        return twiml.goodbye(text)
    return twiml.gather(text, turn=_turns_heard(interaction) + 1)


def _turn_settled(call: Call, interaction: Interaction, turn: int) -> str | None:
    """The TwiML for a Gather action (or our hold ``<Redirect>``) whose turn ``turn`` is already answered (the
    stored reply) or is being answered right now (a hold); None when it is neither. Call under the row lock.

    A turn in progress for longer than :data:`STALE_AFTER_BUDGETS` budgets is given up here: the caller hears
    :data:`TURN_LOST` in a Gather for the next turn, and the late answer, if it ever comes, is dropped. If the
    call ended meanwhile, the row is closed here (the status callback left the close to the turn).
    """
    if turn <= _turns_heard(interaction):
        logger.info("replayed Gather action %s turn %s", call.sid, turn)
        return _answer_document(interaction, turn)
    marker = _in_progress(interaction)
    if marker.get("turn") != turn:
        return None
    if not _is_stale(marker, timezone.now()):
        logger.info("Gather action %s turn %s while it is being answered: holding", call.sid, turn)
        return twiml.hold(turn=turn)
    logger.warning("call %s turn %s in progress since %s: given up", call.sid, turn, marker.get("started_at"))
    interaction_append_turn(interaction=interaction, role="agent", text=TURN_LOST, turn=turn, event="turn_lost")
    interaction_set_workflow(interaction=interaction, updates={"turns_heard": turn, IN_PROGRESS: None})
    _close_if_ended(call, interaction)
    return twiml.gather(TURN_LOST, turn=turn + 1)


@dataclass
class _Claim:
    """Turn ``turn`` of a call is ours to answer while ``workflow["turn_in_progress"]["token"] == token``."""

    interaction: Interaction
    turn: int
    token: str


def _turn_begin(call: Call, *, tenant: Tenant, turn: int, text: str, params: Mapping[str, str]) -> str | _Claim | None:
    """Step 1 of a turn, one short transaction under the row lock: answer a replay or a hold (TwiML); None for
    silence on a turn that is not under way; otherwise append the caller's words (once per ``CallSid:turn``;
    ``customer_message_received`` on commit) and mark the turn in progress (``workflow["turn_in_progress"] =
    {"turn", "token", "started_at"}``)."""
    with transaction.atomic():
        interaction = _locked(call)
        settled = _turn_settled(call, interaction, turn)
        if settled is not None or not text:
            return settled
        if _append_once(
            interaction=interaction,
            ref=f"{call.sid}:{turn}",
            role="customer",
            text=text,
            turn=turn,
            confidence=params.get("Confidence", ""),
        ):
            interaction_id, message_id = interaction.pk, call.message.pk
            conversation_id = interaction.conversation_id
            transaction.on_commit(
                lambda: customer_message_received.send(
                    sender=Interaction,
                    interaction_id=interaction_id,
                    message_id=message_id,
                    text=text,
                    conversation_id=conversation_id,
                    tenant_id=tenant.pk,
                    tenant=tenant,
                )
            )
        token = leases.new_token()
        interaction_set_workflow(
            interaction=interaction,
            updates={IN_PROGRESS: {"turn": turn, "token": token, "started_at": timezone.now().isoformat()}},
        )
    return _Claim(interaction=interaction, turn=turn, token=token)


def _turn_think(*, tenant: Tenant, claim: _Claim, text: str) -> tuple[Assessment, engine.Reply | None]:
    """Step 2, outside any transaction and holding no lock: assess urgency (LLM capped at the turn budget) and,
    unless it is an emergency, a voicemail request or a goodbye, let the engine answer (its tools take their own
    short transactions). Returns the assessment and the engine's reply (None when the engine was not asked)."""
    started, budget = time.monotonic(), _turn_budget()
    assessment = assess(tenant=tenant, text=text, timeout=budget)
    if assessment.result is not None:
        triage_record(interaction=claim.interaction, channel="voice", result=assessment.result)
    answer = None
    paused = selectors.ai_paused(claim.interaction.conversation_id)  # staff hold the conversation: no AI answer
    if not (assessment.is_emergency or _VOICEMAIL.search(text) or _GOODBYE.search(text) or paused):
        answer = engine.respond(
            interaction=claim.interaction, text=text, deadline=started + budget, assessed=assessment.result
        )
    elapsed = time.monotonic() - started
    if elapsed > budget:
        logger.warning(
            "voice turn of interaction %s took %.1f s, over its %.1f s budget", claim.interaction.pk, elapsed, budget
        )
    return assessment, answer


def _turn_finish(
    call: Call,
    *,
    tenant: Tenant,
    params: Mapping[str, str],
    claim: _Claim,
    text: str,
    assessment: Assessment,
    answer: engine.Reply | None,
) -> str:
    """Step 3, one short transaction under the row lock: store the assessment, escalate an emergency, start a
    transfer or append the reply, mark the turn heard; return its TwiML. If the turn was given up meanwhile
    (another token), nothing is written and the stored answer is returned. If the caller hung up meanwhile
    (a terminal ``call_status`` is recorded), the row is closed after the reply is stored."""
    turn = claim.turn
    with transaction.atomic():
        interaction = _locked(call)
        if not leases.mark_held(_in_progress(interaction), claim.token):
            logger.warning(
                "call %s turn %s was given up while the engine answered; its reply is dropped", call.sid, turn
            )
            return _turn_settled(call, interaction, turn) or twiml.hold(turn=turn)
        interaction_set_assessment(interaction=interaction, urgency=assessment.urgency)
        actions: list[str] = []
        ended_by = ""
        if assessment.is_emergency:
            _escalate(interaction, assessment)
            reply, event = f"{_safety_line(tenant, assessment)} {EMERGENCY_FOLLOW_UP}", "emergency"
            document = twiml.gather(reply, turn=turn + 1)
        elif answer is None and _VOICEMAIL.search(text):
            reply, event = VOICEMAIL_PROMPT, "voicemail"
            document = twiml.voicemail(reply, transcribe=not _stt_configured(tenant))
        elif answer is None:
            reply, event = GOODBYE.format(name=tenant.short_name), "goodbye"
            document = twiml.goodbye(reply)
            ended_by = "agent"
        else:
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
        interaction_set_workflow(interaction=interaction, updates={"turns_heard": turn, IN_PROGRESS: None})
        if ended_by:
            interaction_set_metadata(interaction=interaction, updates={"ended_by": ended_by})
        _close_if_ended(call, interaction)
    return document


def _turn_abandon(call: Call, claim: _Claim) -> None:
    """Clear our in-progress mark after a failure, so a retry of the turn runs it again instead of holding; close
    the row if the caller hung up meanwhile (no retry will come, and the close was left to us)."""
    with transaction.atomic():
        interaction = _locked(call)
        if leases.mark_held(_in_progress(interaction), claim.token):
            interaction_set_workflow(interaction=interaction, updates={IN_PROGRESS: None})
            _close_if_ended(call, interaction)


def call_turn(*, tenant: Tenant, params: Mapping[str, str], turn: int) -> str:
    """Handle a Gather action (the caller's speech for ``turn``); return the TwiML of our answer.

    The caller's words and our answer are appended to the transcript; the turn is assessed for urgency; the
    caller may ask for voicemail or say goodbye; a handoff to a human during opening hours transfers the call
    (``<Dial>`` to ``AgentSettings.handoff_number``, see :mod:`channels_app.voice.transfer`). Three steps, and no
    lock is held while the LLM thinks: a short locked transaction records the words and marks the turn in
    progress; assessment and engine run outside any transaction; a second short locked transaction stores the
    answer. A replay of turn ``turn`` (or our hold's ``<Redirect>``, which carries no ``SpeechResult``) gets
    the stored answer once there is one, a ``<Pause>`` + ``<Redirect>`` while the turn is in progress. Errors
    of the engine propagate (the in-progress mark is cleared first).
    """
    call = call_find(tenant=tenant, call_sid=params.get("CallSid", ""))
    if call is None:
        logger.warning("speech for an unknown call %s", params.get("CallSid"))
        return twiml.goodbye(ERROR_GOODBYE)
    text = (params.get("SpeechResult") or "").strip()
    begun = _turn_begin(call, tenant=tenant, turn=turn, text=text, params=params)
    if begun is None:
        return call_no_input(tenant=tenant, params=params, turn=turn, attempt=1)
    if isinstance(begun, str):
        return begun
    try:
        assessment, answer = _turn_think(tenant=tenant, claim=begun, text=text)
        return _turn_finish(
            call, tenant=tenant, params=params, claim=begun, text=text, assessment=assessment, answer=answer
        )
    except BaseException:
        try:
            _turn_abandon(call, begun)
        except Exception:
            logger.exception("call %s turn %s: could not clear the in-progress mark", call.sid, turn)
        raise


def call_no_input(*, tenant: Tenant, params: Mapping[str, str], turn: int, attempt: int) -> str:
    """A Gather heard nothing (``attempt`` = consecutive silences): re-prompt once, then offer voicemail.

    The agent turn is keyed ``CallSid:no-input:turn:attempt`` (``ref``), so a replayed request writes it once.
    """
    call = call_find(tenant=tenant, call_sid=params.get("CallSid", ""))
    if call is None:
        return twiml.goodbye(ERROR_GOODBYE)
    ref = f"{call.sid}:no-input:{turn}:{attempt}"
    if attempt <= _MAX_NO_INPUT_REPROMPTS:
        _append_once(interaction=call.interaction, ref=ref, role="agent", text=REPROMPT, event="no_input")
        return twiml.gather(REPROMPT, turn=turn, no_input=attempt)
    if attempt == _MAX_NO_INPUT_REPROMPTS + 1:
        _append_once(interaction=call.interaction, ref=ref, role="agent", text=NO_INPUT_VOICEMAIL, event="voicemail")
        return twiml.voicemail(NO_INPUT_VOICEMAIL, transcribe=not _stt_configured(tenant))
    goodbye = GOODBYE.format(name=tenant.short_name)
    _append_once(interaction=call.interaction, ref=ref, role="agent", text=goodbye, event="goodbye")
    return twiml.goodbye(goodbye)


def call_voicemail(*, tenant: Tenant, params: Mapping[str, str]) -> str:
    """Go straight to voicemail (the number's fallback, or a ``<Dial>`` that was not answered).

    Opens the call if this is the first we hear of it (once per CallSid, like :func:`call_answer`). The prompt
    turn is keyed ``CallSid:voicemail:turns_heard`` (``ref``), so a replayed request writes it once.
    """
    sid = params.get("CallSid", "")
    if not sid:
        raise InvalidCall("CallSid is required")
    call = call_find(tenant=tenant, call_sid=sid)
    with transaction.atomic():
        if call is None:
            customer, phone = _caller(tenant, params)
            interaction = call_open(
                tenant=tenant,
                customer=customer,
                call_sid=sid,
                sender=phone or params.get("From", "")[:320],
                recipient=params.get("To", ""),
                status=params.get("CallStatus") or "in-progress",
                metadata={"call_status": params.get("CallStatus") or "in-progress"},
            ).interaction
        else:
            interaction = call.interaction
        prompt = f"Thank you for calling {tenant.short_name}. {VOICEMAIL_PROMPT}"
        _append_once(
            interaction=interaction,
            ref=f"{sid}:voicemail:{_turns_heard(interaction)}",
            role="agent",
            text=prompt,
            event="voicemail",
        )
    return twiml.voicemail(prompt, transcribe=not _stt_configured(tenant))


def call_voicemail_done(*, tenant: Tenant, params: Mapping[str, str]) -> str:
    """The ``<Record>`` action: thank the caller and hang up (the recording arrives by its own callback).

    The goodbye turn is keyed ``CallSid:voicemail-done:RecordingSid`` (``ref``), so a replay writes it once.
    """
    call = call_find(tenant=tenant, call_sid=params.get("CallSid", ""))
    text = f"Thank you, your message has been recorded. {GOODBYE.format(name=tenant.short_name)}"
    if call is not None:
        key = params.get("RecordingSid") or f"turn-{_turns_heard(call.interaction)}"
        _append_once(
            interaction=call.interaction,
            ref=f"{call.sid}:voicemail-done:{key}",
            role="agent",
            text=text,
            event="goodbye",
        )
        interaction_set_metadata(interaction=call.interaction, updates={"ended_by": "agent"})
    return twiml.goodbye(text)


def _stt_configured(tenant=None) -> bool:
    from channels_app.voice.voicemail import stt_configured

    return stt_configured(tenant)
