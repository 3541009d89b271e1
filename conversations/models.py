"""The unified interaction log (``call_logs``), conversations, session state and provider messages."""

import uuid

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, DecimalRangeField, RangeBoundary, RangeOperators
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Func, Q
from django.db.models.functions import Cast

from conversations.twilio_statuses import MAX_LENGTH as STATUS_MAX_LENGTH
from conversations.twilio_statuses import MESSAGE_STATUS_RANK, MessageStatus  # noqa: F401 - re-exported
from identity.models import Customer, Tenant
from identity.normalize import validate_dialable_e164


class TsTzRange(Func):
    """``tstzrange(start, end, '[)')``: the half-open time range an appointment occupies."""

    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class CalendarKey(Func):
    """``numrange(h, h, '[]')`` with ``h = hashtextextended(tenant_id::text || ':' || resource, 0)``.

    Lets the no-double-booking exclusion constraint say "same tenant and resource" with GiST's built-in range
    operators (PostgreSQL's btree_gist extension is not available everywhere, e.g. the embedded server). Two
    different calendars sharing a 64-bit hash would only refuse a booking; an overlap is never allowed.
    """

    template = "numrange(hashtextextended(%(expressions)s, 0), hashtextextended(%(expressions)s, 0), '[]')"
    arg_joiner = " || ':' || "
    output_field = DecimalRangeField()

    def as_sql(self, compiler, connection, **extra_context):
        """The template repeats the expressions, so their parameters are repeated too (model validation of the
        constraint, e.g. an admin form, binds the tenant and resource as parameters)."""
        sql, params = super().as_sql(compiler, connection, **extra_context)
        return sql, (*params, *params)


class TranscriptDocument(Func):
    """The full-text document of a transcript: the ``text`` of every turn (roles, times and refs left out),
    English stemming. The GIN index ``call_logs_transcript_fts`` is on exactly this expression, so a query
    ``.annotate(doc=TranscriptDocument("transcript")).filter(doc=SearchQuery(q, config="english"))`` uses it."""

    template = (
        "jsonb_to_tsvector('english'::regconfig, jsonb_path_query_array(%(expressions)s, '$[*].text'::jsonpath), "
        "'[\"string\"]'::jsonb)"
    )
    output_field = SearchVectorField()


class Channel(models.TextChoices):
    VOICE = "voice", "Voice call"
    CHAT = "chat", "Web chat"
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"
    VOICEMAIL = "voicemail", "Voicemail"


class Direction(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class Conversation(models.Model):
    """A thread with one customer that spans channels; at most one is open per customer."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="conversations")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="conversations")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer"], condition=Q(status="open"), name="one_open_conversation"),
        ]
        indexes = [
            models.Index(fields=["tenant", "-last_activity_at"]),
            models.Index(fields=["customer", "-last_activity_at"]),
            # close_idle: open conversations quiet past the tenant's quiet period
            models.Index(fields=["last_activity_at"], condition=Q(status="open"), name="conversation_open_idle"),
        ]

    def __str__(self) -> str:
        return f"Conversation {str(self.id)[:8]} ({self.status})"


class Interaction(models.Model):
    """One session on one channel — a call, a chat, an SMS exchange, an email exchange — in ``call_logs``.

    ``transcript`` is a list of turns ``{"role": "customer"|"agent"|"system"|"staff", "text": str,
    "at": ISO-8601 UTC}``; ``metadata`` holds channel specifics (MessageSids, CallSid, statuses, recording URL).
    Scores are written by enrichment with their provenance in the ``enrichment_*`` columns. An interaction is
    open while ``ended_at`` is null; at most one is open per conversation and channel.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="interactions")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="interactions")
    conversation = models.ForeignKey(Conversation, on_delete=models.PROTECT, related_name="interactions")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    direction = models.CharField(max_length=10, choices=Direction.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField()
    transcript = models.JSONField(default=list, blank=True)
    sentiment = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    lead_score = models.PositiveSmallIntegerField(null=True, blank=True)
    intent = models.CharField(max_length=64, blank=True)
    satisfaction = models.PositiveSmallIntegerField(null=True, blank=True)
    #: Where ``satisfaction`` came from: the patient's answer to the survey, or enrichment's guess from sentiment.
    #: A survey answer is never overwritten by an inferred score.
    satisfaction_source = models.CharField(
        max_length=10,
        blank=True,
        default="",
        db_default="",
        choices=[("", "None"), ("survey", "Survey"), ("inferred", "Inferred")],
    )
    urgency = models.PositiveSmallIntegerField(null=True, blank=True)
    escalated = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict, blank=True)
    #: Internal workflow state (voice turn markers, SMS reply reservations, transfer progress), written by the
    #: channels' claim steps under the row lock; never exported (API, CSV/NDJSON, webhooks, warehouse).
    workflow = models.JSONField(default=dict, db_default={}, blank=True, editable=False)
    enrichment_backend = models.CharField(max_length=40, blank=True)
    enrichment_model = models.CharField(max_length=100, blank=True)
    enrichment_version = models.CharField(max_length=20, blank=True)
    enriched_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "call_logs"
        constraints = [
            models.CheckConstraint(condition=Q(sentiment__gte=-1) & Q(sentiment__lte=1), name="sentiment_range"),
            models.CheckConstraint(condition=Q(lead_score__lte=100), name="lead_score_range"),
            models.CheckConstraint(condition=Q(satisfaction__gte=1) & Q(satisfaction__lte=5), name="csat_range"),
            models.CheckConstraint(condition=Q(urgency__gte=1) & Q(urgency__lte=5), name="urgency_range"),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=models.F("started_at")), name="ended_after_start"
            ),
            models.UniqueConstraint(
                fields=["conversation", "channel"],
                condition=Q(ended_at__isnull=True),
                name="one_open_session_per_channel",
            ),
        ]
        indexes = [
            # "this customer's interactions, newest first" (Customer 360 timeline)
            # (covering: the timeline's and quarterly review's aggregates are index-only scans)
            models.Index(
                fields=["customer", "-started_at"],
                include=["tenant", "channel", "sentiment"],
                name="call_logs_customer_recent",
            ),
            # "this tenant's interactions in a date range by channel" (reports, exports)
            models.Index(fields=["tenant", "started_at", "channel"], name="call_logs_tenant_range"),
            models.Index(fields=["tenant", "updated_at"], name="call_logs_tenant_updated"),
            # enrichment redrive (every minute): closed rows whose enrichment was lost
            models.Index(
                fields=["ended_at"],
                condition=Q(enriched_at__isnull=True, ended_at__isnull=False),
                name="call_logs_unenriched",
            ),
            models.Index(fields=["conversation", "started_at"], name="call_logs_conversation"),
            # the CRM's missed-enrichment sweep (every 30 s) and backfill: a tenant's rows enriched in a window
            models.Index(
                fields=["tenant", "enriched_at"],
                condition=Q(enriched_at__isnull=False),
                name="call_logs_tenant_enriched",
            ),
            # the idle-session sweeper scans open sessions only
            models.Index(fields=["last_activity_at"], condition=Q(ended_at__isnull=True), name="call_logs_open"),
            # the staff inbox puts conversations with an urgent session first
            models.Index(fields=["tenant", "conversation"], condition=Q(urgency__gte=4), name="call_logs_urgent"),
            # full-text search over what was said (staff inbox, call_logs admin): see TranscriptDocument
            GinIndex(TranscriptDocument("transcript"), name="call_logs_transcript_fts"),
            # the voicemail redrive (beat, every 30 s) scans calls with a completed recording, recent first
            models.Index(
                fields=["updated_at"],
                condition=Q(channel="voice", metadata__recording__status="completed"),
                name="call_logs_recording_done",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.direction} {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


class ChannelMessage(models.Model):
    """One provider-level message or call leg (an SMS with its MessageSid, an email with its Message-ID).

    The database guarantees idempotency: a provider id is stored once per channel (Twilio retries a webhook
    → one row), and an outbound message's ``idempotency_key`` once (a task run twice → one send).
    """

    Status = MessageStatus

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="messages")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    direction = models.CharField(max_length=10, choices=Direction.choices)
    provider_id = models.CharField(max_length=255, blank=True, help_text="MessageSid, CallSid or Message-ID")
    idempotency_key = models.CharField(max_length=255, blank=True)
    sender = models.CharField(max_length=320)
    recipient = models.CharField(max_length=320)
    body = models.TextField(blank=True)
    status = models.CharField(max_length=STATUS_MAX_LENGTH, choices=MessageStatus.choices)
    error_code = models.CharField(max_length=20, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    status_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "provider_id"], condition=~Q(provider_id=""), name="provider_id_once"
            ),
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"], condition=~Q(idempotency_key=""), name="outbound_once"
            ),
        ]
        indexes = [
            models.Index(fields=["interaction", "created_at"]),
            # beat redrives (every 30 s), each by created_at over only the rows it looks for: outbound rows still
            # pending (channels_app.delivery.outbound_redrive) and inbound SMS (channels_app.sms.replies)
            models.Index(
                fields=["created_at"], condition=Q(status="pending", direction="outbound"), name="msg_outbound_pending"
            ),
            models.Index(
                fields=["created_at"],
                condition=Q(channel="sms", direction="inbound") & ~Q(provider_id=""),
                name="msg_inbound_sms",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.direction} {self.provider_id or self.idempotency_key}"


class SessionState(models.Model):
    """Key/value memory of a conversation (pending booking date, name given...), valid until ``expires_at``."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="state")
    key = models.CharField(max_length=100)
    value = models.JSONField()
    updated_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["conversation", "key"], name="state_key_once")]
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"{self.key} (until {self.expires_at:%Y-%m-%d})"


# --- the agent: settings, appointments, callbacks, staff notifications -------------------------------


def _default_bookable_hours() -> dict:
    weekday = [["09:00", "17:00"]]
    return {"mon": weekday, "tue": weekday, "wed": weekday, "thu": weekday, "fri": weekday, "sat": [], "sun": []}


# Referenced by migrations under this name; the one implementation lives in identity.normalize.
validate_e164_number = validate_dialable_e164


class AgentSettings(models.Model):
    """Per-tenant agent configuration: persona, policies, bookable hours (tenant time zone) and slot length.

    ``bookable_hours`` maps ``mon``…``sun`` to lists of ``["HH:MM", "HH:MM"]`` local-time ``[start, end)``
    windows (an end of ``"24:00"`` is midnight at the end of the day); a slot of
    ``slot_minutes`` is bookable if it fits entirely inside one window, starts at least ``min_notice_minutes``
    from now and no later than ``horizon_days`` ahead. A tenant without a row uses the defaults. The same
    windows are the clinic's opening hours on the phone (``channels_app.voice.hours``): while open, a caller who
    asks for a person is transferred to ``handoff_number`` (E.164; blank = no transfer, staff follow up).
    """

    class IdentityCheck(models.TextChoices):
        NEVER = "never", "Never ask"
        PHONE = "phone", "Ask a returning patient recognised only by phone (shared family phones)"
        DOB = "dob", "Always confirm the date of birth of a returning patient"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="agent_settings")
    persona = models.TextField(
        blank=True,
        default="You are the friendly, concise front-desk assistant of the clinic.",
        help_text="Who the agent is (system prompt of the LLM backend).",
    )
    policies = models.TextField(
        blank=True,
        default="Never give medical advice. For emergencies tell the patient to call 911.",
        help_text="Rules the agent follows (system prompt of the LLM backend).",
    )
    bookable_hours = models.JSONField(default=_default_bookable_hours, blank=True)
    slot_minutes = models.PositiveSmallIntegerField(default=30)
    min_notice_minutes = models.PositiveIntegerField(default=60)
    horizon_days = models.PositiveSmallIntegerField(default=60)
    history_turns = models.PositiveSmallIntegerField(default=12, help_text="Turns of history given to the LLM.")
    identity_check = models.CharField(max_length=10, choices=IdentityCheck.choices, default=IdentityCheck.NEVER)
    handoff_number = models.CharField(
        max_length=20,
        blank=True,
        default="",
        validators=[validate_e164_number],
        help_text="Front desk number (E.164, e.g. +14155550100) a caller asking for a person is transferred to "
        "during opening hours. Blank: no transfer; staff follow up.",
    )
    takeover_idle_minutes = models.PositiveIntegerField(
        default=30,
        help_text="A staff takeover ends by itself (the AI answers again) this many minutes after the last staff "
        "action in the conversation.",
    )

    class Meta:
        verbose_name_plural = "agent settings"

    def __str__(self) -> str:
        return f"Agent settings of {self.tenant_id}"


class Appointment(models.Model):
    """A booked visit. Two booked appointments of one tenant's resource never overlap (database exclusion)."""

    class Status(models.TextChoices):
        BOOKED = "booked", "Booked"
        CANCELLED = "cancelled", "Cancelled"
        NO_SHOW = "no_show", "No-show"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="appointments")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="appointments")
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="appointments"
    )
    resource = models.CharField(max_length=60, default="main", help_text="The calendar (room, clinician).")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BOOKED)
    booked_via = models.CharField(max_length=10, choices=Channel.choices, blank=True)
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every change (confirmation keys).")
    confirmed_at = models.DateTimeField(null=True, blank=True, help_text="The patient confirmed (a reminder reply).")
    checked_in_at = models.DateTimeField(null=True, blank=True, help_text="Staff checked the patient in.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="appointment_ends_after_start"),
            ExclusionConstraint(
                name="appointment_no_double_booking",
                expressions=[
                    (CalendarKey(Cast("tenant", models.TextField()), "resource"), RangeOperators.OVERLAPS),
                    (TsTzRange("starts_at", "ends_at", RangeBoundary()), RangeOperators.OVERLAPS),
                ],
                condition=Q(status="booked"),
            ),
        ]
        indexes = [models.Index(fields=["customer", "starts_at"]), models.Index(fields=["tenant", "starts_at"])]

    def __str__(self) -> str:
        return f"{self.starts_at:%Y-%m-%d %H:%M} UTC ({self.status})"


class CallbackRequest(models.Model):
    """A patient asked to be called back; the voice channel places the call (``callback_requested``)."""

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        IN_PROGRESS = "in_progress", "Calling"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="callback_requests")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="callback_requests")
    interaction = models.ForeignKey(Interaction, null=True, on_delete=models.SET_NULL, related_name="+")
    phone = models.CharField(max_length=20, blank=True, help_text="E.164 number to call.")
    reason = models.CharField(max_length=500, blank=True, help_text="What the patient wants, in their words.")
    context = models.JSONField(default=dict, blank=True, help_text="Pending state when the callback was asked.")
    preferred_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.REQUESTED)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status__in=["requested", "in_progress"]),
                name="one_pending_callback_per_conversation",
            ),
        ]

    def __str__(self) -> str:
        return f"Callback {self.pk} ({self.status})"


class StaffNotification(models.Model):
    """Something staff must look at in admin: a handoff to a human, a callback to place."""

    class Kind(models.TextChoices):
        HANDOFF = "handoff", "Handoff to a human"
        CALLBACK = "callback", "Callback requested"
        EMERGENCY = "emergency", "Emergency in opening hours"
        URGENT = "urgent", "Urgent: call back today"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    interaction = models.ForeignKey(Interaction, null=True, on_delete=models.SET_NULL, related_name="+")
    summary = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)
    alerted_at = models.DateTimeField(null=True, blank=True, help_text="When staff were texted/emailed about it.")
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["tenant", "handled_at", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["interaction", "kind"], condition=Q(handled_at__isnull=True), name="one_open_notice_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.summary[:60]}"


# Models kept in their feature packages, imported here so Django registers them in this app.
from conversations.analytics.models import Dashboard  # noqa: E402,F401
from conversations.api.models import ApiKey  # noqa: E402,F401
from conversations.inbox.models import (  # noqa: E402,F401
    CannedResponse,
    ConversationHandling,
    InboxConversation,
    InboxNote,
    Takeover,
)
from conversations.recordings.models import RecordingDeletion  # noqa: E402,F401
from conversations.reminders.models import AppointmentReminder, ReminderSettings  # noqa: E402,F401
from conversations.surveys.models import SatisfactionSurvey  # noqa: E402,F401
from conversations.triage.models import TriageDecision  # noqa: E402,F401
from conversations.warehouse.models import WarehouseWatermark  # noqa: E402,F401
from conversations.webhooks.models import (  # noqa: E402,F401
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
