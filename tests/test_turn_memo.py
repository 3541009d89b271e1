"""The per-turn memo (issue 19): one read per tenant per turn, nothing kept after the turn, never another
tenant's value."""

from __future__ import annotations

import pytest

from conversations.appointments import agent_settings_for
from conversations.memo import memoized, turn_memo
from conversations.models import AgentSettings


@pytest.mark.django_db
def test_settings_are_read_once_per_turn_and_per_tenant(tenant, other_tenant, django_assert_num_queries):
    AgentSettings.objects.create(tenant=tenant, persona="Sunny front desk")
    AgentSettings.objects.create(tenant=other_tenant, persona="Clínica del Sol")
    with turn_memo():
        with django_assert_num_queries(2):
            ours, theirs = agent_settings_for(tenant), agent_settings_for(other_tenant)
        with django_assert_num_queries(0):
            assert agent_settings_for(tenant) is ours and agent_settings_for(other_tenant) is theirs
        assert (ours.persona, theirs.persona) == ("Sunny front desk", "Clínica del Sol")
    AgentSettings.objects.filter(tenant=tenant).update(persona="Sunny’s new desk")
    with django_assert_num_queries(1):  # the next turn (or no turn at all) reads again
        assert agent_settings_for(tenant).persona == "Sunny’s new desk"


def test_memo_is_dropped_after_the_turn_and_shared_by_nested_turns():
    calls = []

    def load():
        calls.append(1)
        return len(calls)

    with turn_memo():
        assert memoized("k", "tenant-a", load) == 1
        with turn_memo():
            assert memoized("k", "tenant-a", load) == 1
        assert memoized("k", "tenant-b", load) == 2
    assert memoized("k", "tenant-a", load) == 3
    with turn_memo():
        assert memoized("k", "tenant-a", load) == 4
