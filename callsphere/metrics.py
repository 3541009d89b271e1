"""``/metrics`` for Prometheus, and the webhook-latency middleware.

The series themselves are defined in :mod:`observability.metrics`. A scrape adds up what every process wrote
under ``PROMETHEUS_MULTIPROC_DIR`` (web, workers, beat: prometheus_client's ``MultiProcessCollector``) and
computes two gauges on the spot:

- ``callsphere_celery_queue_depth{queue}``: messages waiting in each Celery queue (``celery``, ``escalation``;
  the lengths of kombu's Redis lists, all priorities).
- ``callsphere_enrichment_lag_seconds``: age of the oldest closed interaction not yet enriched (0 when none):
  partial index ``call_logs_unenriched``, one row, across all tenants (an operator's number, no tenant data).

The endpoint is protected: it answers only ``Authorization: Bearer <METRICS_TOKEN>`` (401 otherwise); with
``METRICS_TOKEN`` unset it does not exist (404).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from observability.metrics import WEBHOOK_LATENCY, multiprocess_dir

logger = logging.getLogger(__name__)

# Path prefix → channel label of the webhook latency histogram.
WEBHOOK_CHANNELS = (
    ("/twilio/sms/", "sms"),
    ("/twilio/voice/", "voice"),
    ("/twilio/escalation/", "escalation"),
    ("/email/inbound/", "email"),
    ("/email/anymail/", "email"),
)
QUEUES = ("celery", "escalation")
_KOMBU_PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport: queue "q" at priority p>0 is the list "q\x06\x16p"
_KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)


def webhook_channel(path: str) -> str | None:
    """The channel label for a provider webhook path, or None for any other request."""
    for prefix, channel in WEBHOOK_CHANNELS:
        if path.startswith(prefix):
            return channel
    return None


class WebhookLatencyMiddleware:
    """Observe ``callsphere_webhook_latency_seconds{channel}`` for every provider webhook request (any status)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        channel = webhook_channel(request.path)
        if channel is None:
            return self.get_response(request)
        started = time.perf_counter()
        try:
            return self.get_response(request)
        finally:
            WEBHOOK_LATENCY.labels(channel=channel).observe(time.perf_counter() - started)


class ScrapeTimeCollector:
    """The gauges read from Redis and PostgreSQL when Prometheus scrapes; a source that is down leaves its
    gauge out of that scrape (logged) instead of failing the whole scrape."""

    def collect(self) -> Iterator[Metric]:
        for read, what in ((self._queue_depth, "Celery queue depth"), (self._enrichment_lag, "enrichment lag")):
            try:
                metric = read()
            except Exception:  # a source that is down must not take the other series with it
                logger.warning("metrics: %s unavailable", what, exc_info=True)
                continue
            yield metric

    def _queue_depth(self) -> Metric:
        import redis

        gauge = GaugeMetricFamily(
            "callsphere_celery_queue_depth", "Messages waiting in a Celery queue (all priorities).", labels=["queue"]
        )
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        try:
            with client.pipeline(transaction=False) as pipe:
                for queue in QUEUES:
                    for step in _KOMBU_PRIORITY_STEPS:
                        pipe.llen(f"{queue}{_KOMBU_PRIORITY_SEP}{step}" if step else queue)
                lengths = pipe.execute()
        finally:
            client.close()
        per = len(_KOMBU_PRIORITY_STEPS)
        for i, queue in enumerate(QUEUES):
            gauge.add_metric([queue], float(sum(lengths[i * per : (i + 1) * per])))
        return gauge

    def _enrichment_lag(self) -> Metric:
        from conversations.models import Interaction

        oldest = (
            Interaction.objects.filter(enriched_at__isnull=True, ended_at__isnull=False)
            .order_by("ended_at")
            .values_list("ended_at", flat=True)
            .first()
        )
        lag = max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0
        return GaugeMetricFamily(
            "callsphere_enrichment_lag_seconds", "Age of the oldest closed interaction not yet enriched.", value=lag
        )


def exposition() -> bytes:
    """The text exposition of every series: all processes' files (or this process's values) + scrape-time gauges."""
    scrape = CollectorRegistry()
    scrape.register(ScrapeTimeCollector())
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry) + generate_latest(scrape)
    return generate_latest(REGISTRY) + generate_latest(scrape)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: 404 unless ``METRICS_TOKEN`` is set; 401 without ``Authorization: Bearer <token>``."""
    token = getattr(settings, "METRICS_TOKEN", "")
    if not token:
        raise Http404
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return HttpResponse("unauthorized\n", status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
