"""The dropped-call metric (issue 15, item 6): calls that ended mid-booking, and those completed on another
channel within 24 hours, per week."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from conversations.analytics.dashboards import chart_rows, dropped_calls
from conversations.models import Appointment, Conversation, Interaction
from tests.factories import ConversationFactory, CustomerFactory, InteractionFactory

pytestmark = pytest.mark.django_db


def _at(tenant, day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=tenant.tzinfo)


def _conversation(tenant, customer):
    """The customer's one conversation (one open conversation per customer is a constraint)."""
    return Conversation.objects.filter(customer=customer).first() or ConversationFactory(
        tenant=tenant, customer=customer
    )


def _call(tenant, customer, start: datetime, minutes: int = 3, intent: str = "book_appointment") -> Interaction:
    conversation = _conversation(tenant, customer)
    return InteractionFactory(
        tenant=tenant,
        customer=customer,
        conversation=conversation,
        channel="voice",
        started_at=start,
        ended_at=start + timedelta(minutes=minutes),
        last_activity_at=start,
        intent=intent,
    )


def _session(tenant, customer, channel: str, start: datetime) -> None:
    InteractionFactory(
        tenant=tenant,
        customer=customer,
        conversation=_conversation(tenant, customer),
        channel=channel,
        started_at=start,
        last_activity_at=start,
    )


def _appointment(tenant, customer, changed_at: datetime, via: str) -> None:
    start = changed_at + timedelta(days=3)
    appt = Appointment.objects.create(
        tenant=tenant, customer=customer, starts_at=start, ends_at=start + timedelta(minutes=30), booked_via=via
    )
    Appointment.objects.filter(pk=appt.pk).update(created_at=changed_at, updated_at=changed_at)


def test_dropped_calls_and_completions_per_week(tenant, other_tenant):
    recovered, lost, booked_on_call, too_late, just_asking, other = (CustomerFactory(tenant=tenant) for _ in range(6))
    # Mon 2 March: hangs up mid-booking, taps the chat link, books there 3 hours later
    call = _call(tenant, recovered, _at(tenant, 2, 10))
    _session(tenant, recovered, "chat", call.ended_at + timedelta(hours=3))
    _appointment(tenant, recovered, call.ended_at + timedelta(hours=3, minutes=2), "chat")
    # Tue: hangs up mid-booking and never comes back
    _call(tenant, lost, _at(tenant, 3, 11), intent="reschedule_appointment")
    # Wed: books during the call: not dropped
    call = _call(tenant, booked_on_call, _at(tenant, 4, 9))
    _appointment(tenant, booked_on_call, call.started_at + timedelta(minutes=2), "voice")
    # Thu: dropped, completed by SMS but 30 hours later: not within the window
    call = _call(tenant, too_late, _at(tenant, 5, 9))
    _session(tenant, too_late, "sms", call.ended_at + timedelta(hours=30))
    _appointment(tenant, too_late, call.ended_at + timedelta(hours=30), "sms")
    # a call about opening hours is not a booking
    _call(tenant, just_asking, _at(tenant, 5, 12), intent="general_question")
    # next week (Mon 9 March): dropped, completed by email the same evening
    call = _call(tenant, recovered, _at(tenant, 9, 16))
    _session(tenant, recovered, "email", call.ended_at + timedelta(hours=2))
    _appointment(tenant, recovered, call.ended_at + timedelta(hours=2, minutes=5), "email")
    # another clinic's dropped call never shows
    _call(other_tenant, CustomerFactory(tenant=other_tenant), _at(other_tenant, 2, 10))

    rows = dropped_calls(tenant=tenant, start=_at(tenant, 1, 0), end=_at(tenant, 15, 0), bucket="day")
    assert rows == [
        {"bucket": date(2026, 3, 2), "dropped_calls": 3, "completed_elsewhere": 1, "rate": 0.3333},
        {"bucket": date(2026, 3, 9), "dropped_calls": 1, "completed_elsewhere": 1, "rate": 1.0},
    ]
    assert chart_rows("dropped_calls", tenant=tenant, start=_at(tenant, 1, 0), end=_at(tenant, 15, 0), bucket="day")


def test_dashboard_page_and_csv_have_the_chart(tenant, admin_client):
    _call(tenant, CustomerFactory(tenant=tenant), _at(tenant, 2, 10))
    response = admin_client.get(
        f"/admin/conversations/dashboard/csv/dropped_calls/?start=2026-03-01&end=2026-03-14&tenant={tenant.pk}"
    )
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"dropped_calls,completed_elsewhere" in body and b"2026-03-02,1,0" in body
