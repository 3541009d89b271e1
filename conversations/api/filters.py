"""django-filter filter sets of the export endpoints (the tenant is implicit: it comes from the credential)."""

from __future__ import annotations

import django_filters as df

from conversations.models import Appointment, Channel, Conversation, Direction, Interaction


class InteractionFilter(df.FilterSet):
    channel = df.MultipleChoiceFilter(choices=Channel.choices, help_text="Repeat for several channels.")
    direction = df.ChoiceFilter(choices=Direction.choices)
    started_after = df.IsoDateTimeFilter(
        field_name="started_at",
        lookup_expr="gte",
        help_text="ISO-8601; interactions that started at or after this instant.",
    )
    started_before = df.IsoDateTimeFilter(
        field_name="started_at", lookup_expr="lt", help_text="ISO-8601; interactions that started before this instant."
    )
    updated_after = df.IsoDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gt",
        help_text="ISO-8601; rows changed after this instant (incremental pulls).",
    )
    customer = df.UUIDFilter(field_name="customer_id")
    conversation = df.UUIDFilter(field_name="conversation_id")
    intent = df.CharFilter()
    escalated = df.BooleanFilter()
    sentiment_min = df.NumberFilter(field_name="sentiment", lookup_expr="gte", help_text="−1..1, inclusive.")
    sentiment_max = df.NumberFilter(field_name="sentiment", lookup_expr="lte", help_text="−1..1, inclusive.")

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
    opened_after = df.IsoDateTimeFilter(field_name="opened_at", lookup_expr="gte")
    opened_before = df.IsoDateTimeFilter(field_name="opened_at", lookup_expr="lt")

    class Meta:
        model = Conversation
        fields = ["status", "customer", "opened_after", "opened_before"]


class AppointmentFilter(df.FilterSet):
    status = df.ChoiceFilter(choices=Appointment.Status.choices)
    customer = df.UUIDFilter(field_name="customer_id")
    resource = df.CharFilter()
    starts_after = df.IsoDateTimeFilter(field_name="starts_at", lookup_expr="gte")
    starts_before = df.IsoDateTimeFilter(field_name="starts_at", lookup_expr="lt")

    class Meta:
        model = Appointment
        fields = ["status", "customer", "resource", "starts_after", "starts_before"]
