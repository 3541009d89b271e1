"""Satisfaction surveys: whether to ask, opening one once, reading and recording the answer, opting out.

Asked after a patient's session closes (SMS, chat, email; a call is asked by SMS) when the patient really talked
to us (a customer turn and an answer), it was not an emergency, they have not opted out, this conversation was
never surveyed and they were not surveyed in the last :data:`COOLDOWN`. An answer is written to the surveyed
session's ``satisfaction`` with ``satisfaction_source = "survey"``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations import services as conv_services
from conversations.models import Conversation, Interaction
from conversations.surveys.models import SatisfactionSurvey
from identity.models import Customer

#: A patient is surveyed at most once in this long.
COOLDOWN = timedelta(days=7)
#: Session-state key of the survey waiting for an SMS/email answer in a conversation: ``{"survey_id"}``.
SURVEY = "survey"
SURVEYED_CHANNELS = ("sms", "chat", "email", "voice")


def survey_should_ask(*, interaction: Interaction, now: datetime | None = None) -> bool:
    """Whether the closed ``interaction`` should get a survey (see the module docstring)."""
    now = now or timezone.now()
    if interaction.channel not in SURVEYED_CHANNELS or interaction.ended_at is None:
        return False
    roles = {turn.get("role") for turn in interaction.transcript or []}
    if not {"customer", "agent"} <= roles and not {"customer", "staff"} <= roles:
        return False
    if (interaction.urgency or 0) >= 4:
        return False  # an emergency or urgent contact is not the moment for "how did we do?"
    customer = interaction.customer
    if customer.surveys_opted_out_at or customer.erased_at or customer.merged_into_id:
        return False
    if SatisfactionSurvey.objects.filter(conversation_id=interaction.conversation_id).exists():
        return False
    return not SatisfactionSurvey.objects.filter(customer=customer, asked_at__gte=now - COOLDOWN).exists()


def survey_open(*, interaction: Interaction, channel: str, at: datetime | None = None) -> SatisfactionSurvey | None:
    """Record that the survey about ``interaction`` is asked on ``channel``; None when this conversation already
    has one (the unique constraint decides; runs in a savepoint, the caller's transaction carries on)."""
    try:
        with transaction.atomic():
            return SatisfactionSurvey.objects.create(
                tenant_id=interaction.tenant_id,
                customer_id=interaction.customer_id,
                conversation_id=interaction.conversation_id,
                interaction=interaction,
                channel=channel,
                asked_at=at or timezone.now(),
            )
    except IntegrityError:
        return None


def survey_remember(*, conversation: Conversation, survey: SatisfactionSurvey, at: datetime | None = None) -> None:
    """Remember in ``conversation``'s session state that ``survey`` waits for a reply ("4", "⭐⭐⭐⭐⭐")."""
    conv_services.state_set(conversation=conversation, key=SURVEY, value={"survey_id": survey.pk}, at=at)


def open_survey(*, state: dict, customer_id) -> SatisfactionSurvey | None:
    """The survey remembered in a conversation's ``state``, still waiting for this customer's answer, or None (no
    query when none is remembered)."""
    value = state.get(SURVEY)
    if not isinstance(value, dict) or not value.get("survey_id"):
        return None
    return SatisfactionSurvey.objects.filter(
        pk=value["survey_id"], customer_id=customer_id, status=SatisfactionSurvey.Status.ASKED
    ).first()


_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "uno": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5,
}  # fmt: skip
_SCORE = re.compile(
    r"^\W*(?:(?:i'?d (?:say|give (?:it|you))|i (?:give|rate) (?:it|you)|le doy|te doy|doy)\s+(?:an?\s+)?)?"
    r"(?P<n>[1-5]|one|two|three|four|five|uno|una|dos|tres|cuatro|cinco)\b"
    r"(?:\s*(?:/|out of|de)\s*5)?(?:\s*(?:stars?|estrellas?))?[\s!.🙂😊👍🙁☹️]*(?P<rest>.*)$",
    re.I | re.S,
)
_STARS = re.compile(r"^\s*(?P<s>(?:⭐|★|🌟)(?:\s*(?:⭐|★|🌟)){0,4})\s*[!.]*\s*$")
_NO_MORE = re.compile(
    r"\b(no more (surveys?|questions)|stop (the )?(surveys?|asking)|don'?t (ask|survey)|unsubscribe from surveys?"
    r"|stop sending (me )?(th[eo]se|the|your|all th[eo]se)?\s*(surveys?|questions|ratings?)"
    r"|no (m[aá]s )?encuestas?|no me pregunte|no me (manden|env[ií]en|mande) (m[aá]s )?encuestas?)\b",
    re.I,
)


def survey_read_reply(text: str) -> int | str | None:
    """A reply to "How did we do? Reply 1–5": the score (``"5"``, ``"4/5"``, ``"4 stars, thanks!"``, ``"five"``,
    ``"cinco"``, ``"⭐⭐⭐⭐"``), ``"decline"`` ("no more surveys please"), or None (not an answer: the agent
    handles it). A number followed by a whole new request ("2 pm tomorrow?") is not an answer."""
    text = (text or "").strip().replace("\u2019", "'")
    if _NO_MORE.search(text):
        return "decline"
    if match := _STARS.match(text):
        return len(re.findall(r"⭐|★|🌟", match.group("s")))
    match = _SCORE.match(text)
    if not match:
        return None
    rest = match.group("rest").strip()
    if rest and (re.match(r"^(:|\d|[ap]\.?m\b|o'?clock|pm|am|de la|tomorrow|mañana)", rest, re.I) or "?" in rest):
        return None  # "2:30", "2 pm", "3 tomorrow?" are times, not ratings
    n = match.group("n").lower()
    return int(n) if n.isdigit() else _WORDS[n]


def score_check(score: object) -> None:
    """Raise ``ValueError`` unless ``score`` is an integer 1–5 (``True`` is not a score)."""
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise ValueError("score must be an integer from 1 to 5")


def survey_answer(*, survey: SatisfactionSurvey, score: int, at: datetime | None = None) -> bool:
    """Record ``score`` (1–5) as the answer (once: False if already answered or declined) and write it to the
    surveyed session's ``satisfaction`` with source ``survey``. Raises ``ValueError`` for a score outside 1–5."""
    score_check(score)
    at = at or timezone.now()
    with transaction.atomic():
        updated = SatisfactionSurvey.objects.filter(pk=survey.pk, status=SatisfactionSurvey.Status.ASKED).update(
            status=SatisfactionSurvey.Status.ANSWERED, score=score, answered_at=at
        )
        if not updated:
            return False
        row = Interaction.objects.select_for_update().get(pk=survey.interaction_id)
        row.satisfaction, row.satisfaction_source = score, "survey"
        row.save(update_fields=["satisfaction", "satisfaction_source", "updated_at"])
        conv_services.state_delete(conversation=row.conversation, keys=[SURVEY])
    survey.status, survey.score, survey.answered_at = SatisfactionSurvey.Status.ANSWERED, score, at
    return True


def survey_decline(*, survey: SatisfactionSurvey, at: datetime | None = None) -> None:
    """The patient wants no more surveys: this one is declined and the customer is never asked again."""
    at = at or timezone.now()
    with transaction.atomic():
        SatisfactionSurvey.objects.filter(pk=survey.pk, status=SatisfactionSurvey.Status.ASKED).update(
            status=SatisfactionSurvey.Status.DECLINED, answered_at=at
        )
        Customer.objects.filter(pk=survey.customer_id, surveys_opted_out_at__isnull=True).update(
            surveys_opted_out_at=at
        )
        conv_services.state_delete(conversation=survey.conversation, keys=[SURVEY])
    survey.status = SatisfactionSurvey.Status.DECLINED


def survey_forget(*, conversation: Conversation) -> None:
    """The patient moved on to something else: an SMS/email survey reply is no longer expected."""
    conv_services.state_delete(conversation=conversation, keys=[SURVEY])
