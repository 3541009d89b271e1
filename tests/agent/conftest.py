"""Fixtures for agent tests: a customer with a phone, and sessions on any channel in one conversation."""

from __future__ import annotations

import pytest

from conversations.services import session_open
from identity.services import customer_resolve

PATIENT = "+15551230001"


@pytest.fixture
def customer(tenant):
    return customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer


@pytest.fixture
def open_session(tenant, customer):
    def open_(channel: str = "sms", **metadata):
        interaction, _ = session_open(tenant=tenant, customer=customer, channel=channel, metadata=metadata or None)
        return interaction

    return open_


@pytest.fixture
def use_openai(settings):
    """Point the agent at an OpenAI stub server (``tests.stubs.openai_api``): ``use_openai(server)``. The client's
    own timeout is long, so only a test's explicit deadline can cut a request short."""

    def configure(server):
        settings.AGENT_BACKEND = "openai"
        settings.OPENAI_API_KEY = "sk-test-stub"
        settings.OPENAI_BASE_URL = server.base_url
        settings.AGENT_MODEL = "stub-model"
        settings.OPENAI_TIMEOUT_SECONDS = 60

    return configure
