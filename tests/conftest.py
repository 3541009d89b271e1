"""Shared fixtures: tenants with numbers, signed Twilio requests, a real Celery worker, daphne, Chromium, API keys."""

from __future__ import annotations

import os

import pytest
import redis
from django.conf import settings
from django.test import Client
from twilio.request_validator import RequestValidator

from channels_app.models import EmailMailbox
from conversations.api.services import api_key_create
from conversations.models import AgentSettings
from providers.sms import LocmemSmsBackend
from tests import processes
from tests.email.conftest import CLINIC as EMAIL_CLINIC
from tests.factories import PhoneNumberFactory, TenantFactory


@pytest.fixture(autouse=True)
def _clean_outbox():
    LocmemSmsBackend.outbox.clear()
    yield
    LocmemSmsBackend.outbox.clear()


def force_login_password_only(client, user) -> None:
    """Django's own ``Client.force_login``: a session that has NOT given a second factor (tests of the OTP gate)."""
    _DJANGO_FORCE_LOGIN(client, user)


def _force_login_otp_verified(self, user, backend=None):
    """``Client.force_login`` as a fully signed-in staff member: password *and* a confirmed TOTP device verified
    in the session (what /admin/otp/verify/ does), so admin, inbox and API tests pass the two-factor gate."""
    _DJANGO_FORCE_LOGIN(self, user, backend)
    if not user.is_staff:
        return
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test authenticator", confirmed=True)
    session = self.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


_DJANGO_FORCE_LOGIN = Client.force_login


@pytest.fixture(autouse=True)
def _otp_verified_force_login(monkeypatch):
    monkeypatch.setattr(Client, "force_login", _force_login_otp_verified)


@pytest.fixture
def tenant(db):
    t = TenantFactory()
    PhoneNumberFactory(tenant=t, number="+15550100001")
    return t


@pytest.fixture
def other_tenant(db):
    t = TenantFactory()
    PhoneNumberFactory(tenant=t, number="+15550100002")
    return t


@pytest.fixture
def twilio_post(client):
    """POST form ``params`` to ``path`` signed like Twilio would with ``tenant``'s token (or ``signature``)."""

    def post(path: str, params: dict, *, tenant=None, signature: str | None = None, token: str | None = None):
        if signature is None:
            signature = RequestValidator(token or tenant.twilio_auth_token).compute_signature(
                settings.PUBLIC_BASE_URL + path, params
            )
        headers = {"HTTP_X_TWILIO_SIGNATURE": signature} if signature else {}
        return client.post(path, params, **headers)

    return post


@pytest.fixture
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real ``celery worker`` process on this run's Redis and test database (use with transactional tests).
    Its queues are purged first: tasks left by earlier tests must not run against this test's rows."""
    with django_db_blocker.unblock():
        proc = processes.start_worker(log_path=tmp_path_factory.mktemp("worker") / "worker.log", purge=True)
    yield proc
    processes.stop(proc)


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture(scope="session", autouse=True)
def _drop_lingering_connections(django_db_setup, django_db_blocker):
    """At the end of the run, end connections child processes or threads left on the test database, so
    pytest-django can drop it (embedded PostgreSQL would otherwise keep one database per run)."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def empty_queue():
    """Tests that read the real Celery queue (``tests.broker.take_queued``) see only what they queued themselves
    and leave nothing for the next test."""
    from tests.broker import take_queued

    take_queued()
    yield
    take_queued()


CHROMIUM = "/usr/bin/chromium"


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def daphne(django_db_setup, django_db_blocker, tmp_path_factory):
    """A daphne process on this run's test database and Redis; yields its base URL."""
    with django_db_blocker.unblock():
        proc, base = processes.start_daphne(
            log_path=tmp_path_factory.mktemp("daphne") / "daphne.log", CHAT_RATE_LIMIT="8"
        )
    yield base
    processes.stop(proc)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (installed by scripts/ensure-chromium.sh; never downloaded)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh (make test does)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM reads are still synchronous.
    # Allowed only while this fixture lives: the previous value comes back at teardown, so later modules keep
    # Django's async-safety check.
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield browser
            browser.close()
    finally:
        if saved is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


@pytest.fixture
def key_for():
    def make(tenant, scopes=None):
        return api_key_create(tenant=tenant, name="test", scopes=scopes)[1]

    return make


@pytest.fixture
def api(client, key_for):
    """``api(tenant)(path, **params)`` → GET with a fresh API key of ``tenant``."""

    def for_tenant(tenant, scopes=None, key=None):
        raw = key or key_for(tenant, scopes)

        def get(path, data=None, **headers):
            return client.get(path, data or {}, HTTP_AUTHORIZATION=f"Bearer {raw}", **headers)

        return get

    return for_tenant


@pytest.fixture
def open_all_day(tenant):
    """The clinic is open (no after-hours voicemail offer in the greeting), whatever the wall clock says: every
    day is one window up to the end of the day ("24:00"), so not a second of it is closed."""
    day = [["00:00", "24:00"]]
    AgentSettings.objects.update_or_create(
        tenant=tenant,
        defaults={"bookable_hours": dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), day)},
    )
    return tenant


@pytest.fixture
def mailbox(tenant):
    tenant.short_name = "Sunrise Clinic"
    tenant.save(update_fields=["short_name"])
    return EmailMailbox.objects.create(tenant=tenant, address=EMAIL_CLINIC, display_name="Sunrise Clinic")
