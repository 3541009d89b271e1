"""Read-only serializers of the export API (JSON). CSV / NDJSON streams use :mod:`conversations.api.export`."""

from __future__ import annotations

from rest_framework import serializers

from conversations.models import Appointment, Conversation, Interaction

INTERACTION_FIELDS = [
    "id",
    "customer",
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


class TurnSerializer(serializers.Serializer):
    role = serializers.CharField(help_text="customer | agent | staff | system")
    text = serializers.CharField()
    at = serializers.DateTimeField(help_text="UTC")


class InteractionSerializer(serializers.ModelSerializer):
    """One ``call_logs`` row. ``sentiment`` −1..1, ``lead_score`` 0–100, ``satisfaction`` 1–5 (null until
    enriched; ``satisfaction_source``: ``survey`` = the patient's answer, ``inferred`` = guessed from sentiment); ``customer`` and ``conversation`` are ids; times are UTC."""

    sentiment = serializers.DecimalField(
        max_digits=5, decimal_places=4, coerce_to_string=False, allow_null=True, read_only=True
    )
    transcript = TurnSerializer(many=True, read_only=True)
    metadata = serializers.DictField(read_only=True, help_text="Channel specifics (MessageSid, CallSid, statuses).")

    class Meta:
        model = Interaction
        fields = INTERACTION_FIELDS
        read_only_fields = fields


class ConversationSerializer(serializers.ModelSerializer):
    """A cross-channel thread with one customer."""

    class Meta:
        model = Conversation
        fields = ["id", "customer", "status", "opened_at", "closed_at", "last_activity_at"]
        read_only_fields = fields


class AppointmentSerializer(serializers.ModelSerializer):
    """A booked (or cancelled) visit; ``booked_via`` is the channel it was booked on."""

    class Meta:
        model = Appointment
        fields = [
            "id",
            "customer",
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
