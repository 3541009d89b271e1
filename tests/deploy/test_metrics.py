"""``/metrics``: protected by a bearer token, exposes the operator's series, and adds up what every process
(this one, a real Celery worker) wrote; the webhook latency histogram moves with a signed SMS round trip."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from channels_app import twilio_payloads
from conversations.models import ChannelMessage, Interaction
from tests.broker import take_queued
from tests.factories import InteractionFactory
from tests.processes import wait_for

TOKEN = "scrape-7hB2-token-for-tests-only"


def scrape(client) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` of one authorised scrape."""
    with override_settings(METRICS_TOKEN=TOKEN):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def families(client) -> set[str]:
    with override_settings(METRICS_TOKEN=TOKEN):
        body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    return {f.name for f in text_string_to_metric_families(body)}


def sms_latency_count(samples) -> float:
    return samples.get(("callsphere_webhook_latency_seconds_count", (("channel", "sms"),)), 0.0)


@pytest.mark.django_db
def test_metrics_needs_the_bearer_token(client):
    assert client.get("/metrics").status_code == 404  # no METRICS_TOKEN: no endpoint
    with override_settings(METRICS_TOKEN=TOKEN):
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-7hB2-token-for-tests-onlY").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION=TOKEN).status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_sms_round_trip_moves_the_webhook_histogram_and_the_workers_task_counter(tenant, twilio_post, celery_worker):
    from prometheus_client import values

    assert values.ValueClass.__name__ == "MmapedValue"  # multiprocess mode (PROMETHEUS_MULTIPROC_DIR)
    from django.test import Client

    scraper = Client()
    before = scrape(scraper)
    params = twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid,
        from_="+15551230042",
        to="+15550100001",
        body="hola, ¿tienen cita el martes? 🙏",
    )
    assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200
    reply = wait_for(
        lambda: (
            ChannelMessage.objects.filter(idempotency_key=f"reply:{params['MessageSid']}")
            .exclude(status="pending")
            .first()
        )
    )
    assert reply.provider_id.startswith("SM") and reply.recipient == "+15551230042"  # the reply went out

    def successes(samples) -> float:
        return sum(
            v
            for (name, labels), v in samples.items()
            if name == "callsphere_celery_tasks_total" and ("state", "SUCCESS") in labels
        )

    def worker_counted():  # more successes than before the round trip: this test's tasks, not earlier tests'
        samples = scrape(scraper)
        return samples if successes(samples) > successes(before) else None

    after = wait_for(worker_counted)  # written by the worker's pool process, read here from its file
    assert sms_latency_count(after) == sms_latency_count(before) + 1
    assert after[("callsphere_webhook_latency_seconds_sum", (("channel", "sms"),))] > before.get(
        ("callsphere_webhook_latency_seconds_sum", (("channel", "sms"),)), 0.0
    )
    assert {"callsphere_webhook_latency_seconds", "callsphere_celery_tasks"} <= families(scraper)
    assert {"callsphere_celery_queue_depth", "callsphere_enrichment_lag_seconds"} <= families(scraper)


@pytest.mark.django_db
def test_a_rejected_webhook_is_timed_too_and_other_pages_are_not(tenant, twilio_post, client):
    before = scrape(client)
    params = twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid, from_="+15551230043", to="+15550100001", body="hi"
    )
    assert twilio_post("/twilio/sms/", params, signature="forged").status_code == 403
    client.get("/healthz")
    after = scrape(client)
    assert sms_latency_count(after) == sms_latency_count(before) + 1
    assert not any(
        name == "callsphere_webhook_latency_seconds_count"
        and dict(labels).get("channel") not in {"sms", "voice", "escalation", "email"}
        for name, labels in after
    )


@pytest.mark.django_db
def test_queue_depth_and_enrichment_lag_are_read_at_scrape_time(client, tenant, empty_queue):
    from enrichment.tasks import enrich_interaction

    InteractionFactory(
        conversation__tenant=tenant,
        started_at=timezone.now() - timedelta(minutes=15),
        ended_at=timezone.now() - timedelta(minutes=12),
        enriched_at=None,
    )
    enrich_interaction.apply_async(args=["00000000-0000-0000-0000-000000000000"])  # no worker: it waits
    samples = scrape(client)
    assert samples[("callsphere_celery_queue_depth", (("queue", "celery"),))] >= 1
    assert samples[("callsphere_enrichment_lag_seconds", ())] >= 12 * 60
    take_queued()
    Interaction.objects.update(enriched_at=timezone.now())
    samples = scrape(client)
    assert samples[("callsphere_celery_queue_depth", (("queue", "celery"),))] == 0
    assert samples[("callsphere_enrichment_lag_seconds", ())] == 0


def test_a_failed_task_is_counted_as_a_failure():
    from celery import shared_task

    from observability.metrics import CELERY_TASKS

    @shared_task(name="tests.deploy.always_fails")
    def always_fails():
        raise ValueError("the clinic's fax machine is on fire")

    counter = CELERY_TASKS.labels(task="tests.deploy.always_fails", state="FAILURE")
    before = counter._value.get()
    always_fails.apply()  # runs the task here; Celery's task_postrun signal fires as in a worker
    assert counter._value.get() == before + 1


@pytest.mark.django_db
def test_a_permanent_provider_error_counts_an_outbound_delivery_failure(tenant, client):
    from channels_app.delivery import delivery_claim, delivery_record_failed
    from tests.test_outbound_delivery import outbound_sms

    key = ("callsphere_outbound_delivery_failures_total", (("channel", "sms"),))
    before = scrape(client).get(key, 0.0)
    message = outbound_sms(
        tenant, key="recordatorio-1", body="Recordatorio: su cita es el martes 10:30", to="+15551230099"
    )
    claim = delivery_claim(message_id=message.pk)
    assert delivery_record_failed(claim=claim, error_code="21211") is True
    assert scrape(client)[key] == before + 1
    assert delivery_record_failed(claim=claim, error_code="21211") is False  # not written twice, not counted twice
    assert scrape(client)[key] == before + 1
