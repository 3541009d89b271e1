"""The chat survey over the websocket: a star frame with a bad score, or with no survey waiting, is refused and
writes nothing; a good one is stored."""

from __future__ import annotations

import pytest

from channels_app.surveys import survey_ask
from conversations.models import Interaction
from conversations.services import interaction_close
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_csat_frames_with_a_bad_score_or_no_survey_are_refused(daphne, ws_connect):
    tenant = TenantFactory(allowed_widget_origins=["https://clinic.example.com"])
    client = ws_connect(tenant)
    client.send({"type": "hello", "visitor": "v" * 8 + "0123456789abcdef"})
    client.until(lambda f: f["type"] == "hello")
    client.send({"type": "message", "id": "msg-000001", "text": "hey, what time do you open tmrw?"})
    client.until(lambda f: f["type"] == "reply")
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
