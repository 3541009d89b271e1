"""Transferring a caller who asks for a person to the clinic's front desk (``<Dial>``), and what follows.

When the agent's turn ran the ``handoff_to_human`` tool (the tool names are ``Reply.actions`` of
``conversations.engine.respond``), the clinic is open (:func:`channels_app.voice.hours.is_after_hours`) and the
tenant's ``AgentSettings.handoff_number`` is set, the caller hears :data:`TRANSFER_LINE` (no PHI) and is dialled
through to that number, with our Twilio number on the call as caller ID. Otherwise the agent's own reply stands
("they'll be in touch"): staff follow up from the ``StaffNotification`` the tool created either way.

State lives in the call's ``call_logs`` row, ``workflow["transfer"]`` (not exported; ``metadata["ended_by"]``
says ``"transfer"``)::

    {"status": "dialing" | "transferred" | "not_answered", "number": E.164, "caller_id": E.164, "turn": int,
     "started_at": ISO-8601 UTC, and once the dialled leg ended: "dial_call_status", "dial_call_sid",
     "dial_call_duration" (seconds or None), "ended_at": ISO-8601 UTC}

At most one transfer per call. The dial-result webhook (Twilio's ``<Dial action>`` request; parameters per
https://www.twilio.com/docs/voice/twiml/dial#action: ``DialCallStatus`` = completed | answered | busy | no-answer |
failed | canceled, ``DialCallSid``, ``DialCallDuration``) is applied once, under the row lock: a replay is answered
with the same TwiML and writes nothing. Answered → hang up; anything else → the voicemail recording (the same
``<Record>`` TwiML and callbacks as every other voicemail).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from channels_app.voice import hours, twiml
from conversations.models import AgentSettings, Interaction
from conversations.services import interaction_append_turn, interaction_set_metadata, interaction_set_workflow
from identity.models import Tenant, TenantPhoneNumber

logger = logging.getLogger(__name__)

HANDOFF_TOOL = "handoff_to_human"
TRANSFER = "transfer"  # workflow key of the call's row
DIALING, TRANSFERRED, NOT_ANSWERED = "dialing", "transferred", "not_answered"
ENDED_BY_TRANSFER = "transfer"  # metadata "ended_by": the agent handed the call on (not an interrupted call)

TRANSFER_LINE = "Please hold while I connect you to our front desk."
NOT_ANSWERED_PROMPT = (
    "Sorry, no one at the front desk could take your call right now. Please leave a message "
    "after the tone, and press the pound key when you're done."
)

#: ``DialCallStatus`` values meaning the front desk picked up (the bridged call is over when Twilio posts them)
ANSWERED_STATUSES = frozenset({"completed", "answered"})
#: ``DialCallStatus`` values meaning nobody picked up; unknown values are treated the same way (voicemail)
UNANSWERED_STATUSES = frozenset({"busy", "no-answer", "failed", "canceled"})


def transfer_number(
    *, tenant: Tenant, interaction: Interaction, actions: Iterable[str], now: datetime | None = None
) -> str | None:
    """The front-desk number (E.164) to transfer this call to after a turn whose tools were ``actions``, or None
    to stay with the agent: no handoff this turn, a transfer already happened on this call, no
    ``handoff_number`` configured, or the clinic is closed at ``now`` (aware; default: now)."""
    if HANDOFF_TOOL not in actions or (interaction.workflow or {}).get(TRANSFER):
        return None
    settings = AgentSettings.objects.filter(tenant=tenant).first()
    number = settings.handoff_number if settings else ""
    if not number or hours.is_after_hours(tenant, now or timezone.now()):
        return None
    return number


def clinic_number(*, tenant: Tenant, params: Mapping[str, str]) -> str:
    """Our Twilio number on this call (E.164): ``To`` of an inbound call, ``From`` of a call we placed —
    whichever of the two the tenant owns, in that order of preference."""
    outbound = (params.get("Direction") or "inbound").startswith("outbound")
    ordered = [
        n for n in ((params.get("From"), params.get("To")) if outbound else (params.get("To"), params.get("From"))) if n
    ]
    owned = set(TenantPhoneNumber.objects.filter(tenant=tenant, number__in=ordered).values_list("number", flat=True))
    return next((n for n in ordered if n in owned), ordered[0] if ordered else "")


def transfer_start(*, interaction: Interaction, params: Mapping[str, str], number: str, turn: int) -> str:
    """Record that caller turn ``turn`` is being transferred to ``number`` and return the ``<Dial>`` TwiML.

    Call inside the transaction that holds the row lock of ``interaction`` (``call_turn`` does); the caller
    appends the transcript turn (``event="transfer"``).
    """
    caller_id = clinic_number(tenant=interaction.tenant, params=params)
    interaction_set_workflow(
        interaction=interaction,
        updates={
            TRANSFER: {
                "status": DIALING,
                "number": number,
                "caller_id": caller_id,
                "turn": turn,
                "started_at": timezone.now().isoformat(),
            }
        },
    )
    interaction_set_metadata(interaction=interaction, updates={"ended_by": ENDED_BY_TRANSFER})
    logger.info("call of interaction %s: transferring to the front desk", interaction.pk)
    return twiml.dial(TRANSFER_LINE, number=number, caller_id=caller_id)


def transfer_document(*, interaction: Interaction) -> str:
    """The TwiML for the transfer's current state, so a replayed request gets the answer it got before:
    the ``<Dial>`` while dialling, a hang-up once transferred, the voicemail recording if not answered."""
    state = (interaction.workflow or {}).get(TRANSFER) or {}
    if state.get("status") == DIALING:
        return twiml.dial(TRANSFER_LINE, number=state["number"], caller_id=state.get("caller_id", ""))
    if state.get("status") == TRANSFERRED:
        return twiml.hangup()
    return twiml.voicemail(NOT_ANSWERED_PROMPT, transcribe=not _stt_configured(interaction.tenant))


def dial_result(*, tenant: Tenant, params: Mapping[str, str]) -> str:
    """Handle the ``<Dial action>`` request of a transfer; return the TwiML that continues the caller's call.

    ``DialCallStatus`` completed / answered → workflow ``transfer.status = "transferred"``, a ``system`` turn,
    hang up. busy / no-answer / failed / canceled (or anything unknown) → ``"not_answered"``, a ``system`` turn,
    the voicemail prompt as an ``agent`` turn and the ``<Record>`` TwiML (no prompt turn when the parent call's
    ``CallStatus`` is already ``completed``: the caller hung up while it rang). Applied once per call (row lock):
    a replay writes nothing and gets the same TwiML. An unknown CallSid (or another tenant's) gets an error
    goodbye and writes nothing.
    """
    from channels_app.voice.agent import ERROR_GOODBYE, call_find

    call = call_find(tenant=tenant, call_sid=params.get("CallSid", ""))
    if call is None:
        logger.warning("dial result for an unknown call %s", params.get("CallSid"))
        return twiml.goodbye(ERROR_GOODBYE)
    status = (params.get("DialCallStatus") or "").strip().lower()
    with transaction.atomic():
        interaction = Interaction.objects.select_for_update().get(pk=call.interaction.pk)
        state = dict((interaction.workflow or {}).get(TRANSFER) or {})
        if state.get("status") in (TRANSFERRED, NOT_ANSWERED):
            logger.info("replayed dial result of call %s", call.sid)
            return transfer_document(interaction=interaction)
        answered = status in ANSWERED_STATUSES
        caller_gone = params.get("CallStatus") == "completed"  # Twilio ignores the TwiML we answer then
        if not answered and status not in UNANSWERED_STATUSES:
            logger.warning("call %s: unknown DialCallStatus %r; offering voicemail", call.sid, status)
        state.update(
            {
                "status": TRANSFERRED if answered else NOT_ANSWERED,
                "dial_call_status": status,
                "dial_call_sid": params.get("DialCallSid", ""),
                "dial_call_duration": _int(params.get("DialCallDuration")),
                "ended_at": timezone.now().isoformat(),
            }
        )
        interaction_set_workflow(interaction=interaction, updates={TRANSFER: state})
        if answered:
            interaction_append_turn(
                interaction=interaction,
                role="system",
                event="transferred",
                text="Call transferred to the front desk.",
                dial_call_status=status,
            )
        elif caller_gone:
            interaction_append_turn(
                interaction=interaction,
                role="system",
                event="transfer_not_answered",
                dial_call_status=status,
                text=f"The front desk did not answer the transfer ({status or 'unknown'}); the caller hung up.",
            )
        else:
            interaction_append_turn(
                interaction=interaction,
                role="system",
                event="transfer_not_answered",
                dial_call_status=status,
                text=f"The front desk did not answer the transfer ({status or 'unknown'}); voicemail offered.",
            )
            interaction_append_turn(interaction=interaction, role="agent", text=NOT_ANSWERED_PROMPT, event="voicemail")
        return transfer_document(interaction=interaction)


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _stt_configured(tenant=None) -> bool:
    from channels_app.voice.voicemail import stt_configured

    return stt_configured(tenant)
