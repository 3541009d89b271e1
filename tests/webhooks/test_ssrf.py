"""SSRF guard: private, loopback, link-local (and disguised) targets refused; DNS resolved once; IP pinned."""

import socket

import httpx
import pytest
from django.utils import timezone

from conversations.webhooks import delivery
from conversations.webhooks.models import WebhookAttempt, WebhookDelivery
from conversations.webhooks.services import webhook_delivery_attempt, webhook_event_emit
from conversations.webhooks.ssrf import UnsafeTarget, resolve_target


def fake_resolver(*addresses):
    calls = []

    def resolve(host, port, type=0):
        calls.append(host)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses
        ]

    resolve.calls = calls
    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(address, settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS = []
    with pytest.raises(UnsafeTarget):
        resolve_target("https://hooks.example.com/x", resolver=fake_resolver(address))


def test_one_private_answer_among_public_ones_is_refused():
    with pytest.raises(UnsafeTarget):
        resolve_target("https://hooks.example.com/x", resolver=fake_resolver("93.184.216.34", "10.0.0.7"))


def test_scheme_credentials_and_plain_http_rules(settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    public = fake_resolver("93.184.216.34")
    for url in ("ftp://hooks.example.com/", "https://user:pw@hooks.example.com/", "http://hooks.example.com/"):
        with pytest.raises(UnsafeTarget):
            resolve_target(url, resolver=public)


def test_public_target_is_pinned_to_the_checked_ip(settings):
    resolver = fake_resolver("93.184.216.34")
    target = resolve_target("https://hooks.example.com:8443/in?x=1", resolver=resolver)
    assert resolver.calls == ["hooks.example.com"]  # resolved exactly once
    assert target.connect_url == "https://93.184.216.34:8443/in?x=1"
    assert target.host_header == "hooks.example.com:8443"

    seen = []
    transport = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(204))
    original = delivery.resolve_target
    delivery.resolve_target = lambda url: target
    try:
        result = delivery.send(
            url="https://hooks.example.com:8443/in?x=1",
            msg_id="msg_1",
            body="{}",
            secrets=["whsec_" + "A" * 44],
            at=timezone.now(),
            transport=transport,
        )
    finally:
        delivery.resolve_target = original
    assert result.ok
    assert seen[0].url.host == "93.184.216.34" and seen[0].headers["host"] == "hooks.example.com:8443"
    assert seen[0].extensions["sni_hostname"] == "hooks.example.com"  # TLS name checked against the real host


@pytest.mark.django_db
def test_loopback_receiver_is_refused_by_default(tenant, endpoint, receiver, settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS = []  # the default
    settings.WEBHOOK_ALLOW_HTTP = True  # so that the address check is what refuses
    message = webhook_event_emit(tenant=tenant, event_type="incident.acknowledged", payload={}, dedupe_key="x")
    d = WebhookDelivery.objects.get(message=message)
    assert webhook_delivery_attempt(delivery_id=d.pk) == "retrying"
    assert receiver.requests == []
    assert WebhookAttempt.objects.get(delivery=d).error.startswith(
        "refused: 127.0.0.1 does not resolve to a public address"
    )
