"""Asking the satisfaction survey on the session's own channel, and the email link page.

When a session closes (``interaction_closed``) :func:`survey_ask` decides (:func:`conversations.surveys.services.
survey_should_ask`) and asks, once per conversation:

- SMS (and a call, whose caller is texted): "How did we do? Reply 1–5" to a verified phone that has not opted
  out; the reply is read in the conversation (``conversations.agent.engine._survey_reply``);
- chat: a ``{"type": "survey"}`` frame to the session's websocket group; the widget shows five stars and answers
  ``{"type": "csat", "survey": id, "score": n}`` (:func:`chat_survey_answer`). A widget that was closed, reloaded
  or disconnected when the frame went out gets it again at its next ``hello`` while the survey waits (asked less
  than :data:`CHAT_SURVEY_REOFFER` ago, :func:`chat_survey_pending`); the answer is recorded once;
- email: five signed links ``/s/<token>?score=n`` to a verified address; the link opens a page where the patient
  confirms the score with a tap (a link scanner's GET records nothing), or asks for no more surveys.

No PHI in any of them: the clinic's name and the question.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.shortcuts import render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_http_methods

from channels_app.confirmations import textable_phone
from conversations.language import language_of
from conversations.layer_send import group_send
from conversations.models import Channel, Interaction, SatisfactionSurvey
from conversations.surveys.services import (
    score_check,
    survey_answer,
    survey_decline,
    survey_open,
    survey_remember,
    survey_should_ask,
)
from identity.services import LANGUAGES

logger = logging.getLogger(__name__)

LINK_SALT = "callsphere.survey-link"
LINK_MAX_AGE = 14 * 24 * 3600  # seconds an emailed survey link stays valid
QUESTION = gettext_noop("How did we do?")
THANKS = gettext_noop("Thank you for your feedback!")
#: A chat survey nobody answered is shown again at each ``hello`` of the patient for this long after it was asked.
CHAT_SURVEY_REOFFER = timedelta(hours=24)


def survey_sms_text(tenant) -> str:
    """The SMS question (no PHI), in the active language."""
    return _(
        "{clinic}: How did we do? Reply with a number from 1 (poor) to 5 (great). "
        "Reply NO SURVEYS and we won't ask again."
    ).format(clinic=tenant.short_name)


def survey_link(survey: SatisfactionSurvey, score: int | None = None) -> str:
    """The signed link of ``survey`` (``?score=n`` preselects a score); it names no patient."""
    token = signing.dumps({"s": survey.pk}, salt=LINK_SALT, compress=True)
    return f"{settings.PUBLIC_BASE_URL}/s/{token}/" + (f"?score={score}" if score else "")


def _ask_sms(interaction: Interaction) -> SatisfactionSurvey | None:
    from channels_app.sms.services import sms_send

    phone = textable_phone(tenant=interaction.tenant, customer=interaction.customer)
    if not phone:
        return None
    survey = survey_open(interaction=interaction, channel=Channel.SMS)
    if survey is None:
        return None
    message = sms_send(
        tenant=interaction.tenant,
        customer=interaction.customer,
        to=phone,
        body=survey_sms_text(interaction.tenant),
        idempotency_key=f"survey:{survey.pk}",
    )
    survey_remember(conversation=message.interaction.conversation, survey=survey)
    return survey


def _chat_frame(survey: SatisfactionSurvey) -> dict:
    """The widget's ``survey`` frame (the question in the active language; no PHI)."""
    return {"type": "survey", "survey": survey.pk, "question": _(QUESTION), "scale": 5}


def _ask_chat(interaction: Interaction) -> SatisfactionSurvey | None:
    survey = survey_open(interaction=interaction, channel=Channel.CHAT)
    if survey is None:
        return None
    frame = _chat_frame(survey)
    group = f"chat.{interaction.pk}"
    transaction.on_commit(
        lambda: group_send(group, {"type": "chat.frame", "frame": frame}),
        robust=True,
    )
    return survey


def chat_survey_pending(*, tenant, customer, now: datetime | None = None) -> dict | None:
    """The ``survey`` frame to show (again) to ``customer`` at a widget ``hello``: their newest chat survey still
    unanswered and asked less than :data:`CHAT_SURVEY_REOFFER` ago, in their language; None otherwise (no
    customer, answered, declined, opted out, too old)."""
    if customer is None or customer.surveys_opted_out_at:
        return None
    survey = (
        SatisfactionSurvey.objects.filter(
            tenant=tenant,
            customer=customer,
            channel=Channel.CHAT,
            status=SatisfactionSurvey.Status.ASKED,
            asked_at__gte=(now or timezone.now()) - CHAT_SURVEY_REOFFER,
        )
        .order_by("-asked_at")
        .first()
    )
    if survey is None:
        return None
    with translation.override(language_of(customer)):
        return _chat_frame(survey)


def _ask_email(interaction: Interaction) -> SatisfactionSurvey | None:
    from channels_app.email.outbound import email_to_patient, verified_email_of
    from channels_app.models import OutboundEmail

    to = verified_email_of(interaction.customer)
    if not to:
        return None
    survey = survey_open(interaction=interaction, channel=Channel.EMAIL)
    if survey is None:
        return None
    tenant = interaction.tenant
    lines = [_("How did we do? Tap a score — 1 (poor) to 5 (great):"), ""]
    lines += [f"{n} {'★' * n}: {survey_link(survey, n)}" for n in range(5, 0, -1)]
    lines += ["", _("Thank you — {clinic}").format(clinic=tenant.short_name)]
    outbound = email_to_patient(
        customer=interaction.customer,
        to=to,
        body="\n".join(lines),
        subject=_("How did we do? — {clinic}").format(clinic=tenant.short_name),
        kind=OutboundEmail.Kind.SURVEY,
        idempotency_key=f"survey:{survey.pk}:email",
    )
    survey_remember(conversation=outbound.conversation, survey=survey)  # a reply "5" by email is read too
    return survey


def survey_ask(*, interaction_id, now=None) -> SatisfactionSurvey | None:
    """Ask the survey about the closed session ``interaction_id`` on its channel (a call: by SMS), if it should be
    asked; returns the survey or None. Idempotent (one survey per conversation, a constraint)."""
    interaction = Interaction.objects.select_related("tenant", "customer").filter(pk=interaction_id).first()
    if interaction is None or not survey_should_ask(interaction=interaction, now=now):
        return None
    with transaction.atomic(), translation.override(language_of(interaction.customer)):
        if interaction.channel == Channel.CHAT:
            return _ask_chat(interaction)
        if interaction.channel == Channel.EMAIL:
            return _ask_email(interaction)
        return _ask_sms(interaction)


def chat_survey_answer(*, tenant, customer, score, survey_id=None) -> dict:
    """A star tapped in the widget: record ``score`` on the chat survey ``survey_id`` of this customer (a widget
    that sends no id: their newest unanswered chat survey) and return the ``survey_thanks`` frame, in the
    customer's language. Idempotent: a second tap, another tab or a resend after a reconnect answers the same
    thanks and records nothing (the first score stays). Raises ``ValueError`` for a score that is not an integer
    1–5 and ``LookupError`` when no such chat survey belongs to this customer (or, without an id, none waits)."""
    score_check(score)
    if customer is None:
        raise LookupError("no survey is waiting for an answer")
    surveys = SatisfactionSurvey.objects.filter(tenant=tenant, customer=customer, channel=Channel.CHAT)
    if survey_id is not None:
        survey = surveys.filter(pk=survey_id).first() if isinstance(survey_id, int) else None
    else:
        survey = surveys.filter(status=SatisfactionSurvey.Status.ASKED).order_by("-asked_at").first()
    if survey is None:
        raise LookupError("no survey is waiting for an answer")
    if survey.status == SatisfactionSurvey.Status.ASKED:
        survey_answer(survey=survey, score=score)  # a conditional update: a concurrent second tap records nothing
    with translation.override(language_of(customer)):
        return {"type": "survey_thanks", "survey": survey.pk, "text": _(THANKS)}


def _survey_from(token: str) -> tuple[SatisfactionSurvey | None, bool]:
    """The survey a link names and whether the link expired (a genuine link older than :data:`LINK_MAX_AGE` still
    names its survey, so the page can say so in the patient's language); ``(None, False)`` for a forged one."""
    try:
        value, expired = signing.loads(token, salt=LINK_SALT, max_age=LINK_MAX_AGE), False
    except signing.SignatureExpired:
        value, expired = signing.loads(token, salt=LINK_SALT), True
    except signing.BadSignature:
        return None, False
    pk = value.get("s") if isinstance(value, dict) else None
    if not isinstance(pk, int) or isinstance(pk, bool):
        return None, False
    return SatisfactionSurvey.objects.select_related("tenant", "customer").filter(pk=pk).first(), expired


def _page_language(request, survey: SatisfactionSurvey | None) -> str:
    """The patient's preferred language; for a link naming no survey, the browser's (English or Spanish)."""
    if survey is not None:
        return language_of(survey.customer)
    wanted = translation.get_language_from_request(request)[:2]
    return wanted if wanted in LANGUAGES else "en"


@require_http_methods(["GET", "POST"])
def survey_page(request, token: str):
    """``/s/<token>/``: GET shows the five scores (``?score=n`` preselected) and records nothing; POST ``score=n``
    records the answer, POST ``decline=1`` stops future surveys. In the patient's ``preferred_language``. A forged
    link → 404 page, an expired one → 410 page; an answered or declined survey → a page saying so (a second submit
    changes nothing); a bad score → 400 with the form again."""
    survey, expired = _survey_from(token)
    lang = _page_language(request, survey)
    with translation.override(lang):
        response = _survey_page(request, survey, expired, {"lang": lang, "question": _(QUESTION)})
    response["Content-Language"] = lang
    return response


def _survey_page(request, survey: SatisfactionSurvey | None, expired: bool, context: dict):
    page = "surveys/survey.html"
    if survey is None:
        return render(request, page, {**context, "state": "invalid"}, status=404)
    context.update(survey=survey, clinic=survey.tenant.short_name, scores=range(1, 6))
    if survey.status == SatisfactionSurvey.Status.DECLINED:
        return render(request, page, {**context, "state": "declined"})
    if survey.status != SatisfactionSurvey.Status.ASKED:
        return render(request, page, {**context, "state": "done"})
    if expired:
        return render(request, page, {**context, "state": "expired", "link_days": LINK_MAX_AGE // 86400}, status=410)
    if request.method == "GET":
        raw = request.GET.get("score", "")
        selected = int(raw) if raw in {"1", "2", "3", "4", "5"} else None
        return render(request, page, {**context, "state": "ask", "selected": selected})
    if request.POST.get("decline"):
        survey_decline(survey=survey)
        return render(request, page, {**context, "state": "declined"})
    raw = request.POST.get("score", "")
    if raw not in {"1", "2", "3", "4", "5"}:
        context.update(state="ask", selected=None, error=_("Please choose a score from 1 to 5."))
        return render(request, page, context, status=400)
    if not survey_answer(survey=survey, score=int(raw)):  # a double tap, two tabs: the first answer counts
        return render(request, page, {**context, "state": "done"})
    return render(request, page, {**context, "state": "thanks", "selected": int(raw)})


@shared_task(acks_late=True, ignore_result=True)
def survey_ask_task(interaction_id: str) -> None:
    """Ask the satisfaction survey about one closed session (:func:`survey_ask`; idempotent)."""
    survey_ask(interaction_id=interaction_id)
