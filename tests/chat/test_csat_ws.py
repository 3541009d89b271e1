"""The chat survey over the websocket: a star frame with a bad score, or with no survey waiting, is refused and
writes nothing; a good one is stored. A survey pushed while the patient had no connection (tab closed, connection
dropped) is shown again at the next hello, in their language, until answered, and the answer counts once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.surveys import survey_ask
from conversations.models import Interaction, SatisfactionSurvey
from conversations.services import interaction_close
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_csat_frames_with_a_bad_score_or_no_survey_are_refused(daphne, ws_connect):
    tenant = TenantFactory(allowed_widget_origins=["https://clinic.example.com"])
    client = ws_connect(tenant)
    client.send({"type": "hello", "visitor": "v" * 8 + "0123456789abcdef"})
    client.until(lambda f: f["type"] == "hello")
    client.send({"type": "message", "id": "msg-000001", "text": "hey, what time do you open tmrw?"})
    client.until(lambda f: f["type"] == "reply" and f["seq"] is not None)
    client.send({"type": "csat", "score": 4})
    assert client.until(lambda f: f["type"] == "error")[-1]["code"] == "no_survey"
    chat = Interaction.objects.get(channel="chat")
    interaction_close(interaction=chat)
    survey = survey_ask(interaction_id=chat.pk)
    assert client.until(lambda f: f["type"] == "survey")[-1]["scale"] == 5
    for bad in ["4", 0, 6, 4.5, True, None]:
        client.send({"type": "csat", "score": bad})
        assert client.until(lambda f: f["type"] == "error")[-1]["code"] == "bad_score", bad
    survey.refresh_from_db()
    assert survey.status == "asked" and survey.score is None
    client.send({"type": "csat", "score": 2})
    assert client.until(lambda f: f["type"] == "survey_thanks")
    survey.refresh_from_db()
    assert survey.score == 2


VISITOR = "reload-visitor-0123456789"


def _hello(client, last_seq=-1) -> list[dict]:
    """Frames answering a ``hello``, up to a probe's error (frames of one connection are handled in order)."""
    client.send({"type": "hello", "visitor": VISITOR, "last_seq": last_seq})
    client.send({"type": "csat", "score": 9})  # the probe: its bad_score error comes after every hello frame
    return client.until(lambda f: f["type"] == "error" and f["code"] == "bad_score")


def test_a_survey_missed_while_disconnected_is_shown_again_and_counted_once(daphne, ws_connect):
    tenant = TenantFactory(allowed_widget_origins=["https://clinic.example.com"])
    first = ws_connect(tenant)
    first.send({"type": "hello", "visitor": VISITOR})
    first.until(lambda f: f["type"] == "hello")
    first.send({"type": "message", "id": "msg-000001", "text": "do you take walk-ins on saturdays?"})
    first.until(lambda f: f["type"] == "reply" and f["seq"] is not None)
    first.close()  # the patient closed the tab
    chat = Interaction.objects.get(channel="chat")
    interaction_close(interaction=chat)
    survey = survey_ask(interaction_id=chat.pk)  # its frame goes to a group nobody listens to
    assert survey is not None

    chat.customer.preferred_language = "es"
    chat.customer.save(update_fields=["preferred_language"])
    dropped = ws_connect(tenant)
    [shown] = [f for f in _hello(dropped) if f["type"] == "survey"]
    assert (shown["survey"], shown["question"]) == (survey.pk, "¿Qué tal le atendimos?")
    dropped.close()  # the connection drops before a star is tapped

    again = ws_connect(tenant)
    assert [f["survey"] for f in _hello(again) if f["type"] == "survey"] == [survey.pk]
    again.send({"type": "csat", "survey": survey.pk, "score": 4})
    thanks = again.until(lambda f: f["type"] == "survey_thanks")[-1]
    assert thanks["text"] == "¡Gracias por su opinión!"
    again.send({"type": "csat", "survey": survey.pk, "score": 1})  # a resend after a reconnect, a second tab
    assert again.until(lambda f: f["type"] == "survey_thanks")[-1]["survey"] == survey.pk
    survey.refresh_from_db()
    chat.refresh_from_db()
    assert (survey.status, survey.score, chat.satisfaction, chat.satisfaction_source) == ("answered", 4, 4, "survey")

    later = ws_connect(tenant)
    assert not [f for f in _hello(later) if f["type"] == "survey"]  # answered: never shown again


def test_another_patients_survey_cannot_be_answered_and_an_old_one_is_not_shown_again(daphne, ws_connect):
    tenant = TenantFactory(allowed_widget_origins=["https://clinic.example.com"])
    client = ws_connect(tenant)
    client.send({"type": "hello", "visitor": VISITOR})
    client.until(lambda f: f["type"] == "hello")
    client.send({"type": "message", "id": "msg-000001", "text": "is there parking at the clinic?"})
    client.until(lambda f: f["type"] == "reply" and f["seq"] is not None)
    client.close()
    chat = Interaction.objects.get(channel="chat")
    interaction_close(interaction=chat)
    survey = survey_ask(interaction_id=chat.pk)

    stranger = ws_connect(tenant)
    stranger.send({"type": "hello", "visitor": "someone-else-0123456789"})
    stranger.until(lambda f: f["type"] == "hello")
    stranger.send({"type": "message", "id": "msg-000002", "text": "hi, what are your hours?"})
    stranger.until(lambda f: f["type"] == "reply" and f["seq"] is not None)
    stranger.send({"type": "csat", "survey": survey.pk, "score": 1})
    assert stranger.until(lambda f: f["type"] == "error")[-1]["code"] == "no_survey"

    SatisfactionSurvey.objects.filter(pk=survey.pk).update(asked_at=timezone.now() - timedelta(hours=25))
    back = ws_connect(tenant)
    assert not [f for f in _hello(back) if f["type"] == "survey"]
    survey.refresh_from_db()
    assert (survey.status, survey.score) == ("asked", None)
