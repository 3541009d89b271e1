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
