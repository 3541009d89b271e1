"""Voice test fixtures: opening hours, a phone placing calls (see :mod:`tests.voice.phone`), stubs and signals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from channels_app.voice import hours
from conversations.signals import escalation_requested
from providers.voice import LocmemVoiceBackend
from tests.stubs.openai_api import BlockingLLM, llm_serving
from tests.voice.handoff import FRONT_DESK, WEEK, agent_settings, zone_where_it_is_noon
from tests.voice.phone import Phone
from tests.voice.stub import VoiceStub
from tests.voice.turns import AGENT_REPLY


@pytest.fixture
def phone(twilio_post, tenant, open_all_day):
    return Phone(twilio_post, tenant)


@pytest.fixture(autouse=True)
def _clean_calls():
    LocmemVoiceBackend.calls.clear()
    yield
    LocmemVoiceBackend.calls.clear()


@pytest.fixture
def voice_stub():
    stub = VoiceStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def open_now(tenant, open_all_day):
    """The clinic is open for the whole test, whatever time the test runs, and transfers to the front desk
    (applied after :func:`open_all_day`, which ``phone`` uses)."""
    tenant.timezone = zone_where_it_is_noon()
    tenant.save(update_fields=["timezone"])
    agent_settings(tenant, bookable_hours={d: [["00:00", "23:59"]] for d in WEEK}, handoff_number=FRONT_DESK)
    assert not hours.is_after_hours(tenant, datetime.now(UTC))
    return tenant


@pytest.fixture
def closed_always(tenant, open_all_day):
    """The clinic has no opening hours on any day: always closed (applied after :func:`open_all_day`)."""
    agent_settings(tenant, bookable_hours={d: [] for d in WEEK}, handoff_number=FRONT_DESK)
    assert hours.is_after_hours(tenant, datetime.now(UTC))
    return tenant


@pytest.fixture
def escalations():
    received = []
    escalation_requested.connect(
        lambda sender, **kw: received.append(kw), weak=False, dispatch_uid="tests.voice.escalations"
    )
    yield received
    escalation_requested.disconnect(dispatch_uid="tests.voice.escalations")


@pytest.fixture
def llm(settings):
    with llm_serving(settings, BlockingLLM(AGENT_REPLY)) as responder:
        yield responder
