"""django-filter filter sets of the export endpoints (the tenant is implicit: it comes from the credential)."""

from __future__ import annotations

from datetime import UTC, timedelta

import django_filters as df
from django import forms
from django_filters.fields import IsoDateTimeField

from conversations.models import Appointment, Channel, Conversation, Direction, Interaction

# PostgreSQL stores UTC offsets up to ±15:59 ("time zone displacement out of range" beyond); real zones span
# −12:00..+14:00. An offset outside PostgreSQL's range is an impossible instant, refused with a 400.
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)


def to_utc(value):
    """``value`` (aware datetime) in UTC, or :class:`forms.ValidationError` for an offset beyond ±15:59 or an
    instant outside years 1–9999 once in UTC. Used by every datetime filter and the cursor of the list pages, so
    an impossible datetime is a 400 before any query, never a database error (500) or a broken stream."""
    offset = value.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        raise forms.ValidationError("UTC offset out of range (±15:59 at most).", code="offset")
    try:
        return value.astimezone(UTC) if offset is not None else value.replace(tzinfo=UTC)
    except OverflowError as exc:
        raise forms.ValidationError("datetime out of range.", code="overflow") from exc


class UtcIsoDateTimeField(IsoDateTimeField):
    """ISO-8601 → aware UTC datetime, validated by :func:`to_utc`."""

    def to_python(self, value):
        parsed = super().to_python(value)
        return to_utc(parsed) if parsed is not None else None


class UtcIsoDateTimeFilter(df.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class InteractionFilter(df.FilterSet):
    channel = df.MultipleChoiceFilter(choices=Channel.choices, help_text="Repeat for several channels.")
    direction = df.ChoiceFilter(choices=Direction.choices)
    started_after = UtcIsoDateTimeFilter(
        field_name="started_at",
        lookup_expr="gte",
        help_text="ISO-8601; interactions that started at or after this instant.",
    )
    started_before = UtcIsoDateTimeFilter(
        field_name="started_at", lookup_expr="lt", help_text="ISO-8601; interactions that started before this instant."
    )
    updated_after = UtcIsoDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gt",
        help_text="ISO-8601; rows changed after this instant (incremental pulls).",
    )
    customer = df.UUIDFilter(field_name="customer_id")
    conversation = df.UUIDFilter(field_name="conversation_id")
    intent = df.CharFilter(max_length=64)
    escalated = df.BooleanFilter()
    sentiment_min = df.NumberFilter(
        field_name="sentiment", lookup_expr="gte", min_value=-1, max_value=1, help_text="−1..1, inclusive."
    )
    sentiment_max = df.NumberFilter(
        field_name="sentiment", lookup_expr="lte", min_value=-1, max_value=1, help_text="−1..1, inclusive."
    )

    class Meta:
        model = Interaction
        fields = [
            "channel",
            "direction",
            "started_after",
            "started_before",
            "updated_after",
            "customer",
            "conversation",
            "intent",
            "escalated",
            "sentiment_min",
            "sentiment_max",
        ]


class ConversationFilter(df.FilterSet):
    status = df.ChoiceFilter(choices=Conversation.Status.choices)
    customer = df.UUIDFilter(field_name="customer_id")
    opened_after = UtcIsoDateTimeFilter(field_name="opened_at", lookup_expr="gte")
    opened_before = UtcIsoDateTimeFilter(field_name="opened_at", lookup_expr="lt")

    class Meta:
        model = Conversation
        fields = ["status", "customer", "opened_after", "opened_before"]


class AppointmentFilter(df.FilterSet):
    status = df.ChoiceFilter(choices=Appointment.Status.choices)
    customer = df.UUIDFilter(field_name="customer_id")
    resource = df.CharFilter(max_length=60)
    starts_after = UtcIsoDateTimeFilter(field_name="starts_at", lookup_expr="gte")
    starts_before = UtcIsoDateTimeFilter(field_name="starts_at", lookup_expr="lt")

    class Meta:
        model = Appointment
        fields = ["status", "customer", "resource", "starts_after", "starts_before"]
