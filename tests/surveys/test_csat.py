"""The satisfaction survey (issue 15, CSAT): asked once after a session closes, on its channel; answered by SMS
through the real webhook or by the emailed link; stored with source ``survey``, which enrichment never overwrites;
opt-out respected."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app import twilio_payloads
from channels_app.sms.replies import sms_reply
from channels_app.surveys import survey_ask, survey_link
from conversations.models import ChannelMessage, Interaction, SatisfactionSurvey
from conversations.services import interaction_close, session_open
from conversations.surveys.services import survey_read_reply
from enrichment.services import interaction_enrich
from identity.models import Customer
from identity.services import customer_resolve
from providers.sms import LocmemSmsBackend

pytestmark = pytest.mark.django_db
PATIENT = "+15551230001"
CLINIC = "+15550100001"


def _text(tenant, twilio_post, body: str) -> str:
    params = twilio_payloads.inbound_sms(account_sid=tenant.twilio_account_sid, from_=PATIENT, to=CLINIC, body=body)
    assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200
    inbound = ChannelMessage.objects.get(provider_id=params["MessageSid"])
    if inbound.body.strip().upper() != "STOP":
        sms_reply(inbound_id=inbound.pk)
    return LocmemSmsBackend.outbox[-1]["body"] if LocmemSmsBackend.outbox else ""


def _talk_and_close(tenant, twilio_post, body="hi, what are your opening hours?") -> Interaction:
    _text(tenant, twilio_post, body)
    row = Interaction.objects.filter(channel="sms", ended_at__isnull=True).latest("started_at")
    interaction_close(interaction=row)
    row.refresh_from_db()
    return row


def test_sms_survey_answered_by_a_reply_lands_in_satisfaction_as_survey(tenant, twilio_post):
    closed = _talk_and_close(tenant, twilio_post)
    survey = survey_ask(interaction_id=closed.pk)
    assert survey is not None and survey.channel == "sms"
    asked = ChannelMessage.objects.get(idempotency_key=f"survey:{survey.pk}")
    assert asked.recipient == PATIENT and "1 (poor) to 5 (great)" in asked.body
    reply = _text(tenant, twilio_post, "4 - thanks, that was helpful!")
    assert "Thank you for your feedback" in reply
    closed.refresh_from_db()
    assert (closed.satisfaction, closed.satisfaction_source) == (4, "survey")
    survey.refresh_from_db()
    assert (survey.status, survey.score) == ("answered", 4)
    interaction_enrich(interaction_id=closed.pk)  # enrichment runs (again): the patient's answer stays
    closed.refresh_from_db()
    assert (closed.satisfaction, closed.satisfaction_source) == (4, "survey")


def test_enrichment_marks_its_own_score_inferred(tenant, twilio_post):
    closed = _talk_and_close(tenant, twilio_post, "thank you so much, you were great")
    row = interaction_enrich(interaction_id=closed.pk)
    assert row.satisfaction is not None and row.satisfaction_source == "inferred"


def test_never_asked_twice(tenant, twilio_post):
    closed = _talk_and_close(tenant, twilio_post)
    assert survey_ask(interaction_id=closed.pk) is not None
    assert survey_ask(interaction_id=closed.pk) is None  # the task ran twice
    later = _talk_and_close(tenant, twilio_post, "sorry, one more question: do you take Aetna?")
    assert survey_ask(interaction_id=later.pk) is None  # same conversation / within the cooldown
    assert SatisfactionSurvey.objects.count() == 1
    assert ChannelMessage.objects.filter(idempotency_key__startswith="survey:").count() == 1


def test_cooldown_is_per_customer_across_conversations(tenant, twilio_post):
    closed = _talk_and_close(tenant, twilio_post)
    survey = survey_ask(interaction_id=closed.pk)
    SatisfactionSurvey.objects.filter(pk=survey.pk).update(asked_at=timezone.now() - timedelta(days=8))
    from conversations.services import conversation_close

    conversation_close(conversation=closed.conversation)
    again = _talk_and_close(tenant, twilio_post, "hello again, quick question about parking")
    assert again.conversation_id != closed.conversation_id
    assert survey_ask(interaction_id=again.pk) is not None


def test_no_more_surveys_opts_out(tenant, twilio_post):
    closed = _talk_and_close(tenant, twilio_post)
    survey = survey_ask(interaction_id=closed.pk)
    assert "won't ask you for feedback again" in _text(tenant, twilio_post, "No more surveys please 🙏")
    survey.refresh_from_db()
    assert survey.status == "declined"
    assert Customer.objects.get(pk=closed.customer_id).surveys_opted_out_at is not None
    SatisfactionSurvey.objects.all().delete()  # even with no survey on record, an opted-out patient is not asked
    assert survey_ask(interaction_id=closed.pk) is None


def test_stop_means_no_sms_survey(tenant, twilio_post):
    closed = _talk_and_close(tenant, twilio_post)
    _text(tenant, twilio_post, "STOP")
    assert survey_ask(interaction_id=closed.pk) is None
    assert not ChannelMessage.objects.filter(idempotency_key__startswith="survey:").exists()


def test_a_new_request_instead_of_a_score_goes_to_the_agent(tenant, twilio_post):
    closed = _talk_and_close(tenant, twilio_post)
    survey_ask(interaction_id=closed.pk)
    reply = _text(tenant, twilio_post, "2 pm tomorrow?")
    assert "feedback" not in reply
    assert SatisfactionSurvey.objects.get().status == "asked"
    closed.refresh_from_db()
    assert closed.satisfaction_source == ""


def test_an_emergency_session_is_not_surveyed(tenant, twilio_post):
    closed = _talk_and_close(tenant, twilio_post, "my husband has crushing chest pain and can't breathe")
    assert survey_ask(interaction_id=closed.pk) is None


def test_a_session_with_no_answer_from_us_is_not_surveyed(tenant):
    customer = customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer
    row, _ = session_open(tenant=tenant, customer=customer, channel="sms")
    interaction_close(interaction=row)
    assert survey_ask(interaction_id=row.pk) is None


@pytest.mark.parametrize(
    "text, read",
    [
        ("5", 5),
        ("4/5", 4),
        ("3 stars", 3),
        ("five!", 5),
        ("cinco", 5),
        ("⭐⭐⭐⭐", 4),
        ("I'd give it a 2", 2),
        ("1. Waited forever.", 1),
        ("no more surveys", "decline"),
        ("pls stop sending me these surveys 🙄", "decline"),
        ("ya no me manden encuestas porfa", "decline"),
        ("2:30", None),
        ("3 pm works", None),
        ("10", None),
        ("can I book for friday?", None),
    ],
)
def test_reading_replies(text, read):
    assert survey_read_reply(text) == read


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def _email_survey(tenant):
    customer = customer_resolve(
        tenant=tenant, email="jane@example.com", phone=PATIENT, verified_kinds=("email",)
    ).customer
    row, _ = session_open(tenant=tenant, customer=customer, channel="email")
    Interaction.objects.filter(pk=row.pk).update(
        transcript=[
            {"role": "customer", "text": "Can I bring my kids?", "at": "x"},
            {"role": "agent", "text": "Yes.", "at": "y"},
        ]
    )
    interaction_close(interaction=row)
    survey = survey_ask(interaction_id=row.pk)
    assert survey is not None and survey.channel == "email"
    return survey, row


def test_email_survey_link_asks_before_recording(tenant, client):
    survey, row = _email_survey(tenant)
    email = ChannelMessage.objects.get(idempotency_key=f"survey:{survey.pk}:email")
    links = re.findall(r"https?://\S+", email.body)
    assert len(links) == 5 and "jane" not in email.body
    page = client.get(_path(links[0]))  # a link scanner's GET records nothing
    assert page.status_code == 200 and b"Send my score" in page.content
    survey.refresh_from_db()
    assert survey.status == "asked"
    assert client.post(_path(survey_link(survey)), {"score": "seven"}).status_code == 400
    assert client.post(_path(survey_link(survey)), {"score": "5"}).status_code == 200
    row.refresh_from_db()
    assert (row.satisfaction, row.satisfaction_source) == (5, "survey")
    again = client.post(_path(survey_link(survey)), {"score": "1"})
    assert b"already have your answer" in again.content
    row.refresh_from_db()
    assert row.satisfaction == 5


def test_email_survey_bad_link_is_404_and_decline_opts_out(tenant, client):
    assert client.get("/s/not-a-real-token/").status_code == 404
    survey, row = _email_survey(tenant)
    assert client.post(_path(survey_link(survey)), {"decline": "1"}).status_code == 200
    assert Customer.objects.get(pk=row.customer_id).surveys_opted_out_at is not None


def test_dashboard_shows_survey_and_inferred_apart(tenant):
    from conversations.analytics.dashboards import csat
    from tests.factories import InteractionFactory

    customer = customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer
    now = timezone.now()
    for score, source in [(5, "survey"), (3, "survey"), (2, "inferred"), (4, "inferred")]:
        InteractionFactory(
            tenant=tenant, customer=customer, satisfaction=score, satisfaction_source=source, started_at=now
        )
    [row] = csat(tenant=tenant, start=now - timedelta(days=1), end=now + timedelta(days=1))
    assert (row["answers"], row["avg_csat"]) == (4, 3.5)
    assert (row["survey_answers"], row["avg_survey"], row["inferred_answers"], row["avg_inferred"]) == (2, 4.0, 2, 3.0)
