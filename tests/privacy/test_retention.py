"""Retention: expired session state is deleted by the beat task, live state stays."""

from datetime import timedelta

import pytest
from django.utils import timezone

from conversations import services
from conversations.models import SessionState
from conversations.tasks import purge_expired_state


@pytest.mark.django_db
def test_expired_state_is_deleted(patient_row):
    conversation = patient_row.conversation
    services.state_set(conversation=conversation, key="old", value="x", at=timezone.now() - timedelta(days=400))
    services.state_set(conversation=conversation, key="live", value="y")
    assert purge_expired_state() == 1
    assert list(SessionState.objects.filter(conversation=conversation).values_list("key", flat=True)) == ["live"]
