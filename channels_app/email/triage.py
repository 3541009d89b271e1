"""The EmailTriageAgent: what happens to an accepted inbound email (runs in a Celery task after ingest).

1. Triage of the new text (subject + reply, not the quoted history): :mod:`conversations.triage` (the rules,
   plus the LLM's second opinion when configured), through :func:`channels_app.voice.assess.assess`.
2. Emergency: the safety reply in the patient's language (911 / 988 / Poison Control); urgent: "flagged as
   urgent"; both with ``escalation_requested`` on commit — the escalation app pages only emergencies, after
   hours, and alerts staff in opening hours, at most once per interaction — plus a staff handoff.
3. Otherwise the agent engine answers (``conversations.engine.respond``; tools may book / move / cancel).
4. Either answer goes back as a threaded reply (:func:`channels_app.email.outbound.email_reply_prepare`).

No lock is held while the LLM thinks (the urgency check and the engine may take tens of seconds, and ingest,
the admin and the patient's other channels must not wait on these rows). A triage is a claim
(:mod:`identity.leases`: claim → think → finish, redriven), held as the mark ``triage["claim"]`` of the inbound
row for :func:`triage_lease`. A run that finds a live claim does nothing (``in_progress``; the task retries once
the lease is over). The engine may have acted (booked, moved) before an attempt died, so it runs at most once
per email: an attempt that takes over an expired claim (or whose engine raised) answers :data:`FALLBACK_REPLY`
and hands the conversation to staff (decision ``fallback``); an urgent email is escalated as usual. The finish
(under the row lock, only while the claim is still ours, else ``superseded``) stores the assessment, escalates
or hands off, prepares the reply (keyed ``email-reply:<inbound id>``) and sets ``triage = {"decision",
"urgency", "attempt"}`` and ``triaged_at``. :func:`email_triage_redrive` (beat, every 30 s) re-queues accepted,
untriaged emails received ``REDRIVE_AFTER`` .. ``REDRIVE_MAX_AGE`` ago (60 s .. 1 h) that hold no live claim.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channels_app.delivery import REDRIVE_AFTER, REDRIVE_MAX_AGE
from channels_app.email.outbound import email_reply_prepare
from channels_app.models import InboundEmail
from channels_app.voice.assess import Assessment, assess
from conversations import engine
from conversations.agent.services import handoff_request
from conversations.models import Interaction
from conversations.selectors import ai_paused
from conversations.services import interaction_set_assessment
from conversations.signals import escalation_requested
from conversations.triage import assess_rules, safety_reply
from conversations.triage.records import triage_record
from identity import leases

logger = logging.getLogger(__name__)

URGENT = 4
URGENT_REPLY = (
    "{clinic}: we received your message and flagged it as urgent for our clinical team. "
    "If this is a medical emergency, call 911 (or your local emergency number) now."
)
FALLBACK_REPLY = (
    "{clinic}: thank you for your message. We couldn't answer it automatically; a member of our "
    "team will get back to you."
)
FALLBACK_HANDOFF_REASON = "The automatic email answer failed: please answer the patient's last email."
#: key of ``InboundEmail.triage`` while a triage attempt holds the email
CLAIM = "claim"
#: most emails :func:`email_triage_redrive` re-queues per run (oldest first; the rest wait 30 s for the next)
REDRIVE_BATCH = 500


def triage_lease() -> timedelta:
    """How long a claim keeps other attempts off: a task's lease (:func:`identity.leases.task_lease`)."""
    return leases.task_lease()


def triage_budget() -> float:
    """Seconds the urgency check plus the engine may take (the engine's ``deadline``): the task's soft time
    limit (``CELERY_TASK_SOFT_TIME_LIMIT``) less a margin for the finishing transaction, at least 10 s."""
    soft = getattr(settings, "CELERY_TASK_SOFT_TIME_LIMIT", None) or 100
    return max(10.0, float(soft) - 20.0)


@dataclass
class TriageOutcome:
    """``decision``: ``escalated`` | ``answered`` | ``fallback`` (the engine was not run again, or failed: a
    holding reply and a staff handoff) | ``skipped`` (not accepted, or already triaged) | ``in_progress``
    (another attempt holds the claim until ``lease_until``, aware UTC) | ``superseded`` (this attempt's claim
    was taken over; nothing written). ``urgency`` 1–5; ``reply_id`` the outbound ChannelMessage."""

    decision: str
    urgency: int = 0
    reply_id: int | None = None
    lease_until: datetime | None = None


@dataclass
class TriageClaim:
    """This attempt holds ``inbound`` while ``triage["claim"]["token"] == token``; ``engine_ran_before`` is
    True when an earlier attempt's claim expired without a result (it may have run the engine)."""

    inbound: InboundEmail
    interaction: Interaction
    token: str
    attempt: int
    engine_ran_before: bool


def _locked(inbound_id) -> InboundEmail | None:
    """The inbound row, locked until the surrounding transaction ends (only that row: ``of=("self",)``)."""
    return InboundEmail.objects.select_for_update(of=("self",)).select_related("tenant").filter(pk=inbound_id).first()


def triage_claim(*, inbound_id, now: datetime | None = None) -> TriageClaim | TriageOutcome:
    """Step 1: claim the triage of one inbound email in a short transaction of its own (committed on return).

    Returns a :class:`TriageClaim` (lease until ``now`` + :func:`triage_lease`; ``now`` aware UTC, default the
    current time), or an outcome: ``skipped`` (gone, not accepted, already triaged, its interaction erased) or
    ``in_progress`` (another attempt's lease is live).
    """
    now = now or timezone.now()
    with transaction.atomic():
        inbound = _locked(inbound_id)
        if (
            inbound is None
            or inbound.status != InboundEmail.Status.ACCEPTED
            or inbound.triaged_at
            or inbound.interaction_id is None
        ):  # no interaction: its customer was erased since
            return TriageOutcome(decision="skipped")
        mark = (inbound.triage or {}).get(CLAIM)
        taken = leases.mark_claim(mark, now=now, lease=triage_lease())
        if taken is None:
            return TriageOutcome(decision="in_progress", lease_until=leases.mark_lease_until(mark))
        inbound.triage = {CLAIM: taken.mark}
        inbound.save(update_fields=["triage"])
    interaction = Interaction.objects.select_related("tenant", "customer", "conversation").get(
        pk=inbound.interaction_id
    )
    return TriageClaim(
        inbound=inbound,
        interaction=interaction,
        token=taken.token,
        attempt=taken.attempt,
        engine_ran_before=taken.taken_over,
    )


class EmailTriageAgent:
    """Classify one claimed inbound email and compose its answer (step 2; see the module docstring)."""

    def think(self, claim: TriageClaim) -> tuple[Assessment, str, str]:
        """Assess and answer ``claim``'s email outside any transaction, holding no lock. Returns
        ``(assessment, reply body, decision)`` with decision ``escalated`` | ``answered`` | ``fallback``."""
        inbound, tenant = claim.inbound, claim.inbound.tenant
        text = inbound.reply_text or ""
        started = time.monotonic()
        assessment = assess(
            tenant=tenant, text=f"{inbound.subject}\n{text}".strip(), channel="email", timeout=triage_budget()
        )
        if assessment.is_emergency and assessment.result is not None:
            return assessment, safety_reply(assessment.result, clinic=tenant.short_name), "escalated"
        if assessment.urgency >= URGENT:
            return assessment, URGENT_REPLY.format(clinic=tenant.short_name), "escalated"
        fallback = FALLBACK_REPLY.format(clinic=tenant.short_name)
        if claim.engine_ran_before:
            logger.warning(
                "email %s: an earlier triage attempt died (attempt %s now); answering with the fallback "
                "instead of running the engine again",
                inbound.pk,
                claim.attempt,
            )
            return assessment, fallback, "fallback"
        try:
            reply = engine.respond(
                interaction=claim.interaction,
                text=text or inbound.subject,
                deadline=started + triage_budget(),
                assessed=assessment.result,
            )
        except Exception:
            logger.exception("email %s: the engine failed; answering with the fallback", inbound.pk)
            return assessment, fallback, "fallback"
        return assessment, reply.text, "answered"


def triage_finish(*, claim: TriageClaim, assessment: Assessment, body: str, decision: str) -> TriageOutcome:
    """Step 3, one short transaction under the inbound row's lock: if the claim is still ours, store the
    assessment, escalate (``escalation_requested`` on commit + handoff) or hand off a fallback, prepare the
    reply (delivery queued on commit) and mark the email triaged; otherwise write nothing (``superseded``)."""
    inbound_id = claim.inbound.pk
    with transaction.atomic():
        inbound = _locked(inbound_id)
        if inbound.triaged_at or not leases.mark_held((inbound.triage or {}).get(CLAIM), claim.token):
            logger.warning(
                "email %s: triage attempt %s was taken over while it ran; its answer is dropped",
                inbound_id,
                claim.attempt,
            )
            return TriageOutcome(decision="superseded", urgency=assessment.urgency)
        interaction = claim.interaction
        interaction_set_assessment(
            interaction=interaction,
            urgency=assessment.urgency,
            intent=assessment.intent if assessment.intent != "other" else None,
        )
        if assessment.result is not None:
            triage_record(interaction=interaction, channel="email", result=assessment.result)
        if decision == "escalated":
            reason = assessment.reason or "urgent email"
            handoff_request(interaction=interaction, reason=f"Urgent email ({reason}); see the transcript.")
            interaction_id, level = interaction.pk, assessment.urgency
            transaction.on_commit(
                lambda: escalation_requested.send(
                    sender=Interaction, interaction_id=interaction_id, urgency=level, reason=reason
                )
            )
        elif decision == "fallback":
            handoff_request(interaction=interaction, reason=FALLBACK_HANDOFF_REASON)
        inbound.interaction = interaction
        reply, _ = email_reply_prepare(inbound=inbound, body=body)
        inbound.triage = {"decision": decision, "urgency": assessment.urgency, "attempt": claim.attempt}
        inbound.triaged_at = timezone.now()
        inbound.save(update_fields=["triage", "triaged_at"])
    return TriageOutcome(decision=decision, urgency=assessment.urgency, reply_id=reply.pk)


def email_triage(*, inbound_id, now: datetime | None = None) -> TriageOutcome:
    """Run the EmailTriageAgent once for an accepted inbound email: claim → think → finish (module docstring).

    A second run after the first finished is a no-op (``skipped``); one while another attempt holds a live
    claim does nothing (``in_progress``, with ``lease_until``). Database errors propagate (the task fails; the
    redrive takes over once the lease ends, answering with the fallback).
    """
    claim = triage_claim(inbound_id=inbound_id, now=now)
    if isinstance(claim, TriageOutcome):
        if claim.decision == "in_progress":
            logger.info("email %s is being triaged by another attempt (until %s)", inbound_id, claim.lease_until)
        return claim
    paused = ai_paused(claim.interaction.conversation_id, at=claim.inbound.received_at)
    text = f"{claim.inbound.subject}\n{claim.inbound.reply_text or ''}"
    if paused and not assess_rules(text, phrases=claim.inbound.tenant.emergency_phrases or []).is_emergency:
        return TriageOutcome(decision="staff")  # staff have taken the conversation over: they answer (an
        # emergency still gets the safety reply: safety before service)
    assessment, body, decision = EmailTriageAgent().think(claim)
    outcome = triage_finish(claim=claim, assessment=assessment, body=body, decision=decision)
    logger.info("email %s triaged: %s (urgency %s)", inbound_id, outcome.decision, outcome.urgency)
    return outcome


def email_triage_redrive(*, now: datetime | None = None) -> int:
    """Re-queue the triage of accepted emails nobody answered; return how many were queued.

    Due (:func:`identity.leases.free`, all in SQL before the :data:`REDRIVE_BATCH` limit, through the partial
    index ``inbound_email_untriaged``): accepted, not triaged, with an interaction (an erased customer's email is
    never triaged), received ``REDRIVE_AFTER`` .. ``REDRIVE_MAX_AGE`` before ``now`` (aware UTC; older ones are
    left to staff) and no live claim. A queued task claims first, so a duplicate does nothing.
    """
    from channels_app.email.tasks import email_triage_task

    now = now or timezone.now()
    lease_until = leases.mark_lease_until_sql(f"triage__{CLAIM}")  # NULL when unclaimed
    due = (
        InboundEmail.objects.filter(
            status=InboundEmail.Status.ACCEPTED,
            triaged_at__isnull=True,
            interaction__isnull=False,
            received_at__lt=now - REDRIVE_AFTER,
            received_at__gte=now - REDRIVE_MAX_AGE,
        )
        .annotate(lease_until=lease_until)
        .filter(leases.free("lease_until", now))
        .order_by("received_at")
        .values_list("pk", flat=True)[:REDRIVE_BATCH]
    )
    queued = 0
    for inbound_id in due:
        email_triage_task.apply_async((str(inbound_id),), expires=REDRIVE_AFTER.total_seconds())
        queued += 1
    if queued:
        logger.warning("re-queued the triage of %s accepted emails never triaged", queued)
    return queued
