import pytest

from tests.factories import WebhookEndpointFactory
from tests.webhooks import receiver as rcv


@pytest.fixture
def receiver():
    r = rcv.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def allow_loopback(settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    settings.WEBHOOK_RETRY_SCHEDULE = [5, 300, 1800]


@pytest.fixture
def endpoint(tenant, receiver):
    return WebhookEndpointFactory(
        tenant=tenant, url=receiver.url, events=["interaction.enriched", "conversation.closed", "incident.acknowledged"]
    )


@pytest.fixture
def trickler():
    t = rcv.start_trickle()
    yield t
    t.stop()
