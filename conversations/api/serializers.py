"""Read-only serializers of the export API (JSON). CSV / NDJSON streams use :mod:`conversations.api.export`."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from conversations.models import Appointment, Conversation, Interaction

INTERACTION_FIELDS = [
    "id",
    "customer",
    "customer_name",
    "conversation",
    "channel",
    "direction",
    "started_at",
    "ended_at",
    "sentiment",
    "lead_score",
    "intent",
    "satisfaction",
    "satisfaction_source",
    "urgency",
    "escalated",
    "enrichment_backend",
    "enrichment_model",
    "enrichment_version",
    "enriched_at",
    "updated_at",
    "transcript",
    "metadata",
]


@extend_schema_field(OpenApiTypes.STR)
class CustomerNameField(serializers.Field):
    """``customer_name``: the patient's name as the clinic knows it (``Customer.display_name``, from intake or
    staff; ``""`` when unknown or erased). Read from the export viewsets' ``customer_name`` annotation (one join,
    no query per row), else from the row's loaded customer. Only the name: date of birth and reason for visit are
    encrypted and never exported."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "The patient's name (empty when unknown or erased).")
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, value) -> str:
        name = getattr(value, "customer_name", None)
        return (name if name is not None else value.customer.display_name) or ""


def customer_name_field() -> CustomerNameField:
    return CustomerNameField()


class TurnSerializer(serializers.Serializer):
    role = serializers.CharField(help_text="customer | agent | staff | system")
    text = serializers.CharField()
    at = serializers.DateTimeField(help_text="UTC")


class InteractionSerializer(serializers.ModelSerializer):
    """One ``call_logs`` row. ``sentiment`` −1..1, ``lead_score`` 0–100, ``satisfaction`` 1–5 (null until
    enriched; ``satisfaction_source``: ``survey`` = the patient's answer, ``inferred`` = guessed from sentiment);
    ``customer`` and ``conversation`` are ids, ``customer_name`` the patient's name; times are UTC."""

    sentiment = serializers.DecimalField(
        max_digits=5, decimal_places=4, coerce_to_string=False, allow_null=True, read_only=True
    )
    customer_name = customer_name_field()
    transcript = TurnSerializer(many=True, read_only=True)
    metadata = serializers.DictField(read_only=True, help_text="Channel specifics (MessageSid, CallSid, statuses).")

    class Meta:
        model = Interaction
        fields = INTERACTION_FIELDS
        read_only_fields = fields


class ConversationSerializer(serializers.ModelSerializer):
    """A cross-channel thread with one customer (``customer_name``: the patient's name)."""

    customer_name = customer_name_field()

    class Meta:
        model = Conversation
        fields = ["id", "customer", "customer_name", "status", "opened_at", "closed_at", "last_activity_at"]
        read_only_fields = fields


class AppointmentSerializer(serializers.ModelSerializer):
    """A booked (or cancelled) visit; ``booked_via`` is the channel it was booked on; ``customer_name`` the
    patient's name."""

    customer_name = customer_name_field()

    class Meta:
        model = Appointment
        fields = [
            "id",
            "customer",
            "customer_name",
            "conversation",
            "resource",
            "starts_at",
            "ends_at",
            "status",
            "booked_via",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ChannelStatSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=Interaction._meta.get_field("channel").choices)
    count = serializers.IntegerField()
    avg_sentiment = serializers.FloatField(allow_null=True, help_text="−1..1 over scored interactions")


class WeekStatSerializer(serializers.Serializer):
    week_start = serializers.DateField(help_text="Monday, in the tenant's time zone")
    count = serializers.IntegerField()
    avg_sentiment = serializers.FloatField(allow_null=True)


class TimelineSerializer(serializers.Serializer):
    """Customer 360: interactions newest first (``total`` in range, at most ``limit`` listed) and trends."""

    customer = serializers.UUIDField(source="customer.id")
    display_name = serializers.CharField(source="customer.display_name")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    total = serializers.IntegerField()
    by_channel = ChannelStatSerializer(many=True)
    weekly = WeekStatSerializer(many=True)
    interactions = InteractionSerializer(many=True)


class QuarterlyRowSerializer(serializers.Serializer):
    customer_id = serializers.UUIDField()
    channel = serializers.ChoiceField(choices=Interaction._meta.get_field("channel").choices)
    week_start = serializers.DateField()
    count = serializers.IntegerField()
    avg_sentiment = serializers.FloatField(allow_null=True)


class QuarterlyReviewSerializer(serializers.Serializer):
    """Per customer, per channel, per week (tenant time zone): interactions and mean sentiment."""

    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    rows = QuarterlyRowSerializer(many=True)
