"""Answering an inbound SMS: compose the reply once (the engine may run tools), deliver it, re-drive lost ones.

The reply to inbound message ``<MessageSid>`` is the outbound ``ChannelMessage`` with idempotency key
``reply:<MessageSid>``. Before the engine runs, the reply is *reserved*: a claim (:mod:`identity.leases`), the
mark at ``workflow["sms_reply_reservations"][<MessageSid>]`` of the exchange's ``call_logs`` row, written under
that row's lock and committed. It is removed in the same transaction that creates the outbound row.
:func:`sms_reply_redrive` (beat, via ``channels_app.tasks.inbound_redrive``) re-queues replies that never came.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import CharField, Exists, F, Func, OuterRef, Value
from django.db.models.functions import Concat
from django.utils import timezone

from channels_app.delivery import REDRIVE_AFTER, REDRIVE_MAX_AGE
from channels_app.sms.keywords import OPT_OUT_WORDS, Keyword, classify
from channels_app.sms.services import sms_deliver
from conversations import engine
from conversations.agent.services import handoff_request
from conversations.models import Channel, ChannelMessage, Direction, Interaction
from conversations.selectors import ai_paused_exists
from conversations.services import conversation_lock, interaction_set_workflow, message_prepare_outbound
from conversations.triage import assess_rules
from identity import leases

logger = logging.getLogger(__name__)

REPLY_KEY_PREFIX = "reply:"
# classify()'s normalisation in SQL (whitespace, then "." / "!" trimmed, upper-cased), only to exclude opt-outs
# before the redrive's batch limit; classify() still decides for every row that is read.
_KEYWORD_SQL = Func(
    F("body"), template="btrim(btrim(upper(%(expressions)s), E' \\t\\r\\n'), '.!')", output_field=CharField()
)
RESERVATIONS = "sms_reply_reservations"
REDRIVE_BATCH = 500  # inbound SMS re-queued per run at most
FALLBACK_HANDOFF_REASON = "The automatic SMS reply failed: please answer the patient's last text."


def reply_key(inbound: ChannelMessage) -> str:
    """The idempotency key of the reply to ``inbound``: ``reply:<MessageSid>``."""
    return f"{REPLY_KEY_PREFIX}{inbound.provider_id}"


def compose_lease() -> timedelta:
    """How long a reservation keeps other attempts off: a task's lease (:func:`identity.leases.task_lease`)."""
    return leases.task_lease()


def fallback_text(inbound: ChannelMessage) -> str:
    """The reply sent when the engine's answer was lost: no PHI, staff follow up."""
    return (
        f"{inbound.interaction.tenant.short_name}: sorry, we couldn't answer your message automatically. "
        "A member of our team will get back to you."
    )


def sms_compose_reply(*, inbound: ChannelMessage) -> str:
    """The reply text for an inbound SMS: compliance answers for START / HELP, else the engine's reply."""
    tenant = inbound.interaction.tenant
    keyword = classify(inbound.body)
    if keyword is Keyword.OPT_IN:
        return f"{tenant.short_name}: you're subscribed again. Reply STOP to opt out, HELP for help."
    if keyword is Keyword.HELP:
        return f"{tenant.short_name}: {tenant.sms_help_text}"
    return engine.respond(interaction=inbound.interaction, text=inbound.body).text


def _reservations(interaction: Interaction) -> dict:
    return dict((interaction.workflow or {}).get(RESERVATIONS) or {})


@dataclass
class Reservation:
    """This attempt holds the reply to ``inbound``: ``attempt`` (1, 2, …) and ``engine_ran_before`` — True when
    an earlier attempt's lease expired without a reply (it died while composing, maybe after tools ran)."""

    attempt: int
    engine_ran_before: bool


def sms_reply_reserve(*, inbound: ChannelMessage, now: datetime | None = None) -> Reservation | ChannelMessage | None:
    """Reserve the reply to ``inbound`` for this attempt, under the exchange row's lock, and commit (the
    first step of :func:`sms_reply`). Returns the reply row when it exists already (deliver it), None when
    another attempt holds a live lease (leave it alone), else a :class:`Reservation` (lease until ``now`` +
    :func:`compose_lease`; ``now`` aware UTC, default the current time)."""
    now = now or timezone.now()
    with transaction.atomic():
        row = Interaction.objects.select_for_update().only("id", "workflow").get(pk=inbound.interaction_id)
        key = reply_key(inbound)
        outbound = ChannelMessage.objects.filter(tenant_id=inbound.tenant_id, idempotency_key=key).first()
        if outbound is not None:
            return outbound
        marks = _reservations(row)
        taken = leases.mark_claim(marks.get(inbound.provider_id), now=now, lease=compose_lease())
        if taken is None:
            return None
        marks[inbound.provider_id] = taken.mark
        interaction_set_workflow(interaction=row, updates={RESERVATIONS: marks})
    return Reservation(attempt=taken.attempt, engine_ran_before=taken.taken_over)


def _finish(*, inbound: ChannelMessage, body: str, fallback: bool) -> ChannelMessage:
    """Create the pending reply row (once per key) and drop the reservation, in one transaction.

    Usually two statements: the insert, and the one ``UPDATE`` of the ``call_logs`` row that appends the agent's
    turn and drops the reservation (``workflow_drop``). No read first and no savepoint: :func:`sms_reply_reserve`
    found no reply row, and one written since by an attempt that outlived its lease makes the insert fail, which
    rolls this transaction back; a second one then drops the reservation and returns that row. The conversation
    is locked first only for the fallback, whose hand-off writes the conversation after ``call_logs`` (lock
    order: conversation first); the usual path writes no conversation row in this transaction (the activity
    bump runs on commit).
    """
    conflict = False
    try:
        with transaction.atomic():
            if fallback:
                conversation_lock(conversation_id=inbound.interaction.conversation_id)
            try:
                outbound, _ = message_prepare_outbound(
                    interaction=inbound.interaction,
                    sender=inbound.recipient,
                    recipient=inbound.sender,
                    body=body,
                    idempotency_key=reply_key(inbound),
                    expect_new=True,
                    workflow_drop=[RESERVATIONS, inbound.provider_id],
                )
            except IntegrityError:
                conflict = True
                raise
            if fallback:
                handoff_request(interaction=inbound.interaction, reason=FALLBACK_HANDOFF_REASON)
        return outbound
    except IntegrityError:
        if not conflict:
            raise
    # only an attempt that outlived its lease gets here; the first reply row stands
    logger.warning("reply to SMS %s was already written; this attempt's text is dropped", inbound.pk)
    with transaction.atomic():
        row = Interaction.objects.select_for_update().only("id", "workflow").get(pk=inbound.interaction_id)
        marks = _reservations(row)
        if marks.pop(inbound.provider_id, None) is not None:
            interaction_set_workflow(interaction=row, updates={RESERVATIONS: marks})
        return ChannelMessage.objects.get(tenant_id=inbound.tenant_id, idempotency_key=reply_key(inbound))


def _emergency(inbound: ChannelMessage) -> bool:
    tenant = inbound.interaction.tenant
    return assess_rules(inbound.body or "", phrases=tenant.emergency_phrases or []).is_emergency


def sms_reply(*, inbound_id: int, now: datetime | None = None) -> ChannelMessage | None:
    """Compose and deliver the reply to one inbound SMS, once (idempotency key ``reply:<MessageSid>``).

    Returns the reply row (after the delivery attempt), or None when another attempt is composing it.

    The engine may run tools with side effects (a callback request, a booking), so it runs at most once per
    inbound message: the reply is reserved first (a claim, see the module docstring). An attempt that takes over
    an expired reservation (its predecessor died composing), or whose engine raised, does not run the engine
    again: it sends :func:`fallback_text` and hands the conversation to staff. START / HELP answers run no
    engine and are simply composed again. Once the reply row commits, the delivery claim
    (:mod:`channels_app.delivery`) sends it at most once; a late attempt only finds that row.
    """
    now = now or timezone.now()
    inbound = (
        ChannelMessage.objects.select_related("interaction__tenant", "interaction__conversation")
        .defer("interaction__transcript")  # the agent's session reads the row itself; this one only appends
        .annotate(
            paused=ai_paused_exists(conversation=OuterRef("interaction__conversation_id"), at=OuterRef("created_at"))
        )
        .get(pk=inbound_id)
    )
    if inbound.paused and not _emergency(inbound):  # ai_paused, read with the row
        return None  # staff have taken the conversation over (conversations.inbox); an emergency still gets
        # the safety reply (safety before service)
    reserved = sms_reply_reserve(inbound=inbound, now=now)
    if reserved is None:
        logger.info("reply to SMS %s is being composed by another attempt", inbound.pk)
        return None
    if isinstance(reserved, ChannelMessage):
        return sms_deliver(message_id=reserved.pk)
    fallback = reserved.engine_ran_before and classify(inbound.body) is None
    if fallback:
        logger.warning(
            "reply to SMS %s: attempt %s found an earlier attempt dead while composing; sending the "
            "fallback instead of running the engine again",
            inbound.pk,
            reserved.attempt,
        )
        body = fallback_text(inbound)
    else:
        try:
            body = sms_compose_reply(inbound=inbound)
        except Exception:
            logger.exception("composing the reply to SMS %s failed; sending the fallback", inbound.pk)
            body, fallback = fallback_text(inbound), True
    outbound = _finish(inbound=inbound, body=body, fallback=fallback)
    return sms_deliver(message_id=outbound.pk)


def sms_reply_redrive(*, now: datetime | None = None) -> int:
    """Re-queue replies to inbound SMS that never came: received ``REDRIVE_AFTER`` .. ``REDRIVE_MAX_AGE`` ago
    (older ones are left to staff: a late automatic answer does more harm), answerable (not an opt-out
    keyword — the conditions under which :func:`~channels_app.sms.services.sms_receive` queues a reply), with
    no ``reply:<MessageSid>`` row yet and no live reservation. Returns how many were queued.

    Safe to run often: a queued task reserves first, so a duplicate does nothing.
    """
    from channels_app.tasks import sms_reply as sms_reply_task

    now = now or timezone.now()
    replied = ChannelMessage.objects.filter(
        tenant_id=OuterRef("tenant_id"),
        idempotency_key=Concat(Value(REPLY_KEY_PREFIX), OuterRef("provider_id"), output_field=CharField()),
    ).exclude(idempotency_key="")  # never true of a reply key; lets the planner probe the partial outbound_once
    rows = (
        ChannelMessage.objects.filter(
            channel=Channel.SMS,
            direction=Direction.INBOUND,
            created_at__lt=now - REDRIVE_AFTER,
            created_at__gte=now - REDRIVE_MAX_AGE,
        )
        .exclude(provider_id="")
        .exclude(Exists(replied))
        .annotate(keyword=_KEYWORD_SQL)
        .exclude(keyword__in=OPT_OUT_WORDS)  # in SQL: STOPs never get a reply
        .select_related("interaction")
        .order_by("created_at")[:REDRIVE_BATCH]
    )  # and must not crowd the batch
    queued = 0
    for inbound in rows:
        if classify(inbound.body) is Keyword.OPT_OUT:
            continue
        if leases.mark_live(_reservations(inbound.interaction).get(inbound.provider_id), now):
            continue
        sms_reply_task.apply_async((inbound.pk,), expires=REDRIVE_AFTER.total_seconds())
        queued += 1
    if queued:
        logger.warning("re-queued %s inbound SMS without a reply", queued)
    return queued
