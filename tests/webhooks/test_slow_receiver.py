"""A receiver that trickles bytes cannot hold a worker: the total deadline cuts the attempt, it is recorded as
failed and retried on the schedule; attempts whose task died are counted, so the schedule always ends."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.webhooks import services
from conversations.webhooks.delivery import SOFT_LIMIT_ERROR, AttemptResult
from conversations.webhooks.models import WebhookAttempt, WebhookDelivery
from conversations.webhooks.services import LEASE, LOST_ERROR, webhook_delivery_attempt, webhook_event_emit
from conversations.webhooks.tasks import HARD_TIME_LIMIT
from identity.models import TenantMembership
from tests import processes


def emit(tenant, key="incident.acknowledged:slow"):
    message = webhook_event_emit(
        tenant=tenant, event_type="incident.acknowledged", payload={"incident": "1"}, dedupe_key=key
    )
    return WebhookDelivery.objects.get(message=message)


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_loopback")
def test_trickling_headers_hit_the_total_deadline_and_follow_the_schedule(
    tenant, trickler, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_TOTAL_TIMEOUT, settings.WEBHOOK_READ_TIMEOUT = 1, 15  # each byte arrives within 0.1 s
    settings.WEBHOOK_RETRY_SCHEDULE = [5]
    from conversations.webhooks.models import WebhookEndpoint

    WebhookEndpoint.objects.create(tenant=tenant, url=trickler.url, events=["incident.acknowledged"])
    delivery = emit(tenant)
    t0 = timezone.now()
    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=t0) == "retrying"
    delivery.refresh_from_db()
    assert t0 + timedelta(seconds=4.5) <= delivery.next_attempt_at <= t0 + timedelta(seconds=5.5)
    with django_capture_on_commit_callbacks(execute=True):
        assert webhook_delivery_attempt(delivery_id=delivery.pk, now=t0 + timedelta(seconds=6)) == "dead"
    errors = list(WebhookAttempt.objects.filter(delivery=delivery).values_list("status_code", "error"))
    assert [code for code, _ in errors] == [None, None] and len(trickler.requests) == 2
    assert all(e.startswith("timeout: no complete answer within 1 s") for _, e in errors), errors


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_loopback")
def test_an_attempt_whose_task_died_counts_and_the_schedule_ends(tenant, endpoint, receiver, django_user_model):
    # allow_loopback: schedule [5, 300, 1800] → at most 4 attempts. State left by a worker killed mid-attempt:
    admin = django_user_model.objects.create_user("boss", email="boss@clinic.example", password="x")
    TenantMembership.objects.create(user=admin, tenant=tenant, role="admin")
    delivery = emit(tenant)
    t = timezone.now() - timedelta(hours=1)

    def died_during(attempt: int) -> None:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            attempts=attempt, last_attempt_at=t, next_attempt_at=t + LEASE
        )

    died_during(2)  # the next retry (300 s after the lost attempt) is not due until t + 300 s
    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=t + LEASE) == "skipped"
    delivery.refresh_from_db()
    assert delivery.next_attempt_at >= t + timedelta(seconds=270) and delivery.status == "pending"
    assert list(WebhookAttempt.objects.values_list("number", "error")) == [(2, LOST_ERROR)]

    WebhookAttempt.objects.all().delete()
    died_during(4)  # the last attempt of the schedule never finished: dead-lettered, nothing sent again

    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=t + LEASE) == "skipped"
    delivery.refresh_from_db()
    assert delivery.status == "dead" and delivery.last_error == LOST_ERROR and receiver.requests == []
    assert list(WebhookAttempt.objects.values_list("number", flat=True)) == [4]


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_loopback")
def test_an_attempt_taken_over_while_it_ran_writes_nothing(tenant, endpoint, monkeypatch):
    """The attempt outlived its lease: the sweeper's next claim counted it lost and took the delivery over
    (``attempts`` moved on). Its late answer is dropped; the live attempt's outcome decides."""
    delivery = emit(tenant)

    def slow_send(**request):
        later = timezone.now() + LEASE
        WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=2, last_attempt_at=later)
        WebhookAttempt.objects.create(delivery=delivery, number=1, attempted_at=later, error=LOST_ERROR)
        return AttemptResult(status_code=500, error="HTTP 500", duration_ms=61_000)

    monkeypatch.setattr(services.http, "send", slow_send)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "skipped"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 2, None)
    assert list(WebhookAttempt.objects.values_list("number", "error")) == [(1, LOST_ERROR)]


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_loopback")
def test_an_attempt_counted_lost_and_rescheduled_while_it_ran_writes_nothing(tenant, endpoint, monkeypatch, settings):
    """The attempt outlived its lease and the next claim recorded it lost, but its retry was not due yet (so
    ``attempts`` did not move): its late answer is still dropped."""
    settings.WEBHOOK_RETRY_SCHEDULE = [300, 1800]
    delivery = emit(tenant)

    def slow_send(**request):
        assert services._claim(delivery.pk, timezone.now() + LEASE + timedelta(seconds=1)) is None
        return AttemptResult(status_code=500, error="HTTP 500", duration_ms=61_000)

    monkeypatch.setattr(services.http, "send", slow_send)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "skipped"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 1, LOST_ERROR)
    assert list(WebhookAttempt.objects.values_list("number", "error")) == [(1, LOST_ERROR)]


def test_the_task_time_limit_ends_before_the_lease():
    assert HARD_TIME_LIMIT < LEASE.total_seconds()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_soft_time_limit_in_a_real_worker_is_recorded_and_retried(tenant, tmp_path):
    from conversations.webhooks.models import WebhookEndpoint
    from tests.webhooks.receiver import start_trickle

    # Bounded, so a soft limit that does not fire cannot hang the test; long enough that the soft limit (1 s,
    # later on a loaded machine) fires first, and short enough to end before the hard limit (soft + 15 s).
    trickler = start_trickle(duration=10)
    WebhookEndpoint.objects.create(tenant=tenant, url=trickler.url, events=["incident.acknowledged"])
    worker = processes.start_worker(
        log_path=tmp_path / "worker.log",
        WEBHOOK_ALLOWED_PRIVATE_HOSTS="127.0.0.1",
        WEBHOOK_RETRY_SCHEDULE="1,1",
        WEBHOOK_TOTAL_TIMEOUT="30",
        WEBHOOK_TASK_SOFT_TIME_LIMIT="1",
        purge=True,
    )
    try:
        delivery = emit(tenant)  # queued on commit; the soft limit (1 s) fires long before the 30 s deadline
        deadline = time.monotonic() + 90  # three attempts of at most the trickle's 10 s each, and two retries
        while time.monotonic() < deadline:
            delivery.refresh_from_db()
            if delivery.status != "pending":
                break
            time.sleep(0.2)
    finally:
        processes.stop(worker)
        trickler.stop()
    log = (tmp_path / "worker.log").read_text()[-3000:]
    # Without the catch the soft limit escapes send(), nothing is recorded and the delivery stays pending.
    # (Celery's timeout handler may miss the very first task after start-up, which then ends when the
    # trickle stops; later attempts are cut by the soft limit.)
    errors = list(WebhookAttempt.objects.filter(delivery=delivery).order_by("number").values_list("error", flat=True))
    assert delivery.status == "dead" and len(errors) == 3, log
    assert errors[-1] == SOFT_LIMIT_ERROR, log


@pytest.mark.django_db
def test_sweeper_batches_and_does_not_requeue_what_it_already_queued(tenant, settings):
    from conversations.webhooks.models import WebhookEndpoint
    from conversations.webhooks.services import webhook_retry_due

    settings.WEBHOOK_SWEEP_BATCH = 2
    WebhookEndpoint.objects.create(tenant=tenant, url="https://hooks.example.com/x", events=["incident.acknowledged"])
    for i in range(3):
        emit(tenant, key=f"k{i}")
    now = timezone.now() + timedelta(seconds=1)
    assert [webhook_retry_due(now=now), webhook_retry_due(now=now), webhook_retry_due(now=now)] == [2, 1, 0]
    WebhookDelivery.objects.update(next_attempt_at=now)  # a new due time (e.g. a lease ran out): queued again
    assert webhook_retry_due(now=now) == 2


def test_beat_sweeps_expire_within_their_interval(settings):
    for name in ("webhook-retries", "close-idle-sessions", "warehouse-export"):
        entry = settings.CELERY_BEAT_SCHEDULE[name]
        assert 0 < entry["options"]["expires"] <= entry["schedule"], name
