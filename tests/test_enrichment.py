"""Enrichment v1: local scorers, the OpenAI-compatible backend through its real client, provenance."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from conversations import services
from conversations.models import Interaction
from enrichment import scorers
from enrichment.services import interaction_enrich
from identity.services import customer_resolve
from tests.factories import TenantFactory


def test_intent_matches_tenant_examples():
    intents = TenantFactory.build().intents
    assert scorers.intent("Hi, I'd like to book an appointment for next week", intents)[0] == "book_appointment"
    assert scorers.intent("I need to cancel my appointment tomorrow", intents)[0] == "cancel_appointment"
    assert scorers.intent("blue whales are large", intents)[0] == "other"


def test_lead_score_and_csat_stay_in_range():
    for s in (-1.0, 0.0, 1.0):
        for turns in (0, 1, 10):
            score = scorers.lead_score(
                intent_name="book_appointment",
                lead_intents=None,
                customer_turns=turns,
                sentiment_value=s,
                contactable=True,
                urgency_level=1,
            )
            assert 0 <= score <= 100
    assert (
        scorers.lead_score(
            intent_name="book_appointment",
            lead_intents=None,
            customer_turns=3,
            sentiment_value=0.5,
            contactable=True,
            urgency_level=5,
        )
        <= 20
    )
    assert scorers.satisfaction(["thanks", "4/5"], escalated=False) == 4
    assert scorers.satisfaction(["This is terrible, awful service"], escalated=False) <= 2
    assert scorers.satisfaction(["Great, thank you so much!"], escalated=True) == 3


def closed_interaction(tenant, *texts):
    customer = customer_resolve(tenant=tenant, phone="+14155552671", verified_kinds=("phone",)).customer
    row, _ = services.session_open(tenant=tenant, customer=customer, channel="sms")
    for text in texts:
        services.interaction_append_turn(interaction=row, role="customer", text=text)
        services.interaction_append_turn(interaction=row, role="agent", text="Sure!")
    services.interaction_close(interaction=row)
    return row


@pytest.mark.django_db
def test_local_enrichment_writes_scores_with_provenance(tenant):
    row = closed_interaction(tenant, "Hi, I'd like to book an appointment please", "Thank you, that's great!")
    interaction_enrich(interaction_id=row.pk)
    row.refresh_from_db()
    assert row.intent == "book_appointment"
    assert 0 < row.sentiment <= 1
    assert 50 <= row.lead_score <= 100
    assert row.satisfaction in (4, 5)
    assert row.urgency == 1 and not row.escalated
    assert (row.enrichment_backend, row.enrichment_version) == ("local", "1") and row.enriched_at


@pytest.mark.django_db
def test_emergency_words_escalate(tenant):
    row = closed_interaction(tenant, "My father collapsed and has chest pain")
    interaction_enrich(interaction_id=row.pk)
    row.refresh_from_db()
    assert row.urgency == 5 and row.escalated and row.intent == "emergency"


class _StubOpenAI(BaseHTTPRequestHandler):
    """A local stand-in for POST /v1/chat/completions returning a structured-output answer."""

    answer: dict = {}
    status = 200
    requests: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if type(self).status != 200:
            self.send_response(type(self).status)
            self.end_headers()
            return
        payload = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": json.dumps(type(self).answer)},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def openai_stub():
    _StubOpenAI.requests, _StubOpenAI.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield _StubOpenAI, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.mark.django_db
def test_openai_backend_through_real_client(tenant, openai_stub):
    stub, base_url = openai_stub
    stub.answer = {"sentiment": 0.7, "intent": "billing", "lead_score": 42, "satisfaction": 5, "urgency": 1}
    row = closed_interaction(tenant, "How much does a checkup cost?")
    with override_settings(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=base_url, OPENAI_MODEL="gpt-test"):
        interaction_enrich(interaction_id=row.pk)
    row.refresh_from_db()
    assert (float(row.sentiment), row.intent, row.lead_score, row.satisfaction) == (0.7, "billing", 42, 5)
    assert (row.enrichment_backend, row.enrichment_model) == ("openai", "gpt-test")
    request = stub.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert request["body"]["response_format"]["type"] == "json_schema"
    assert "How much does a checkup cost?" in request["body"]["messages"][1]["content"]


@pytest.mark.django_db
def test_openai_failure_falls_back_to_local(tenant, openai_stub):
    stub, base_url = openai_stub
    stub.status = 500
    row = closed_interaction(tenant, "I'd like to book an appointment")
    with override_settings(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=base_url, OPENAI_TIMEOUT_SECONDS=2):
        interaction_enrich(interaction_id=row.pk)
    row.refresh_from_db()
    assert row.enrichment_backend == "local" and row.intent == "book_appointment"


@pytest.mark.django_db
def test_out_of_range_scores_are_refused_by_the_database(tenant):
    from django.db import IntegrityError, transaction

    row = closed_interaction(tenant, "hello")
    for field, value in [("sentiment", 1.5), ("lead_score", 101), ("satisfaction", 0), ("urgency", 6)]:
        with pytest.raises(IntegrityError), transaction.atomic():
            Interaction.objects.filter(pk=row.pk).update(**{field: value})


@pytest.mark.django_db
def test_a_lost_enrichment_is_requeued_once_its_grace_is_over(tenant, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from enrichment import tasks
    from enrichment.services import REDRIVE_AFTER, enrichment_redrive

    queued = []
    monkeypatch.setattr(tasks.enrich_interaction, "apply_async", lambda args, **kw: queued.append(args[0]))
    row = closed_interaction(tenant, "Can I book a checkup next week?")
    assert enrichment_redrive() == 0  # just closed: its own task may still be on its way
    later = timezone.now() + REDRIVE_AFTER + timedelta(seconds=1)
    assert enrichment_redrive(now=later) == 1 and queued == [str(row.pk)]
    tasks.enrich_interaction(queued[0])  # what the worker does
    assert enrichment_redrive(now=later) == 0  # enriched: nothing left to re-queue


@pytest.mark.django_db
def test_enrichment_never_lowers_the_urgency_live_triage_stored(tenant):
    row = closed_interaction(tenant, "ok thanks, bye")
    Interaction.objects.filter(pk=row.pk).update(urgency=5)
    interaction_enrich(interaction_id=row.pk)
    assert Interaction.objects.get(pk=row.pk).urgency == 5
