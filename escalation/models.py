"""On-call data, escalation policies, incidents, notification attempts and acknowledgement links.

Fields and constraints only; workflows live in ``escalation.services`` and reads in ``escalation.selectors``.
Times are aware UTC datetimes; local wall-clock times (handoff, quiet hours, business hours) are interpreted in
the tenant's or the responder's IANA time zone.
"""

from __future__ import annotations

import uuid
import zoneinfo

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from conversations.models import Interaction
from identity.models import Customer, Tenant
from identity.normalize import validate_e164

# Referenced by migrations under this name; the one implementation lives in identity.normalize.
_validate_e164 = validate_e164


def _validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name")


class ContactChannel(models.TextChoices):
    VOICE = "voice", "Phone call"
    SMS = "sms", "SMS"


def _default_channels() -> list[str]:
    return [ContactChannel.VOICE, ContactChannel.SMS]


def _default_business_hours() -> dict:
    # ISO weekday (1 = Monday … 7 = Sunday) → list of ["HH:MM", "HH:MM"] intervals in the tenant's time zone.
    return {str(d): [["08:00", "18:00"]] for d in range(1, 6)}


DEFAULT_SMS_TEMPLATE = "{clinic}: URGENT patient message needs a clinician. Call back {callback}. Ack: {link}"
DEFAULT_VOICE_TEMPLATE = (
    "This is {clinic}. An urgent patient message needs a clinician. Please call {callback}. Press 1 to acknowledge."
)


class EscalationSettings(models.Model):
    """Per-tenant escalation switches: when to page, how urgent is urgent, which policy, what to say.

    ``business_hours`` maps ISO weekday ``"1"``…``"7"`` to ``[["HH:MM", "HH:MM"], …]`` in the tenant's time
    zone (equal bounds: the whole day); outside them (or always, with ``escalate_in_business_hours``) a message of urgency ≥
    ``urgency_threshold`` raises an incident. Quiet hours of responders are ignored for incidents of urgency ≥
    ``quiet_hours_bypass_urgency``. Templates may use ``{clinic}``, ``{callback}`` and ``{link}`` (SMS) only —
    no patient data is ever offered to them (minimal PHI).
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="escalation_settings")
    enabled = models.BooleanField(default=True)
    default_policy = models.ForeignKey(
        "EscalationPolicy", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    business_hours = models.JSONField(default=_default_business_hours, blank=True)
    escalate_in_business_hours = models.BooleanField(
        default=False, help_text="Page even during business hours (otherwise the front desk handles it)."
    )
    urgency_threshold = models.PositiveSmallIntegerField(
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="Messages of at least this urgency (1–5) raise an incident.",
    )
    quiet_hours_bypass_urgency = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="Incidents of at least this urgency ring responders even in their quiet hours.",
    )
    callback_number = models.CharField(
        max_length=20, blank=True, validators=[_validate_e164], help_text="E.164; default: the tenant's number"
    )
    sms_template = models.CharField(max_length=320, default=DEFAULT_SMS_TEMPLATE)
    voice_template = models.CharField(max_length=500, default=DEFAULT_VOICE_TEMPLATE)
    ack_link_ttl_seconds = models.PositiveIntegerField(default=4 * 3600)
    portal_ttl_seconds = models.PositiveIntegerField(
        default=12 * 3600,
        validators=[MinValueValidator(60)],
        help_text="The responder portal behind an ack link opens for this long after the page (default 12 h).",
    )
    sla_ack_seconds = models.PositiveIntegerField(
        default=300,
        validators=[MinValueValidator(1)],
        help_text="SLA target: seconds from raise to acknowledgement (default 5 min); later is a breach.",
    )
    ring_timeout_seconds = models.PositiveSmallIntegerField(default=30)

    class Meta:
        verbose_name_plural = "escalation settings"

    def __str__(self) -> str:
        return f"Escalation settings of {self.tenant}"


class Responder(models.Model):
    """A clinician who can be paged: E.164 phone, own time zone, contact channels, optional quiet hours."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="responders")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="responder",
        help_text="The staff login of this clinician, if any",
    )
    name = models.CharField(max_length=120)
    phone = models.CharField(max_length=20, validators=[_validate_e164], help_text="E.164, e.g. +15551234567")
    email = models.EmailField(blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[_validate_timezone])
    channels = ArrayField(models.CharField(max_length=8, choices=ContactChannel.choices), default=_default_channels)
    quiet_start = models.TimeField(null=True, blank=True, help_text="Local time in the responder's time zone")
    quiet_end = models.TimeField(null=True, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "phone"], name="responder_phone_once")]

    def __str__(self) -> str:
        return self.name

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Team(models.Model):
    """A group of responders paged together by a ``team`` step."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=120)
    members = models.ManyToManyField(Responder, related_name="teams", blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="team_name_once")]

    def __str__(self) -> str:
        return self.name


class Schedule(models.Model):
    """A rotation: members take turns of ``rotation_days``; shifts hand off at ``handoff_time`` (tenant tz).

    The member at position ``k % n`` is primary during shift ``k`` (shift 0 starts on ``rotation_start`` at the
    handoff time); the next member in order is backup. Overrides replace either role for a time window.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=120)
    rotation_start = models.DateField()
    rotation_days = models.PositiveSmallIntegerField(default=7, validators=[MinValueValidator(1)])
    handoff_time = models.TimeField(help_text="Local time in the tenant's time zone")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="schedule_name_once")]

    def __str__(self) -> str:
        return self.name


class ScheduleMember(models.Model):
    """A responder's place in a schedule's rotation (0-based)."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="members")
    responder = models.ForeignKey(Responder, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["schedule", "position"], name="schedule_position_once")]

    def __str__(self) -> str:
        return f"#{self.position} {self.responder_id}"


class OnCallRole(models.TextChoices):
    PRIMARY = "primary", "Primary"
    BACKUP = "backup", "Backup"


class ScheduleOverride(models.Model):
    """``responder`` takes ``role`` in ``schedule`` during ``[starts_at, ends_at)``; the newest override wins."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="overrides")
    responder = models.ForeignKey(Responder, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=8, choices=OnCallRole.choices, default=OnCallRole.PRIMARY)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="override_ends_after_start"),
        ]
        indexes = [models.Index(fields=["schedule", "starts_at", "ends_at"])]

    def __str__(self) -> str:
        return f"{self.get_role_display()} override {self.starts_at:%Y-%m-%d %H:%M}–{self.ends_at:%H:%M} UTC"


class EscalationPolicy(models.Model):
    """Ordered steps; after the last one the ladder repeats ``repeat_count`` more times, then gives up."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="escalation_policies")
    name = models.CharField(max_length=120)
    repeat_count = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(10)])

    class Meta:
        verbose_name_plural = "escalation policies"
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="policy_name_once")]

    def __str__(self) -> str:
        return self.name


class StepTarget(models.TextChoices):
    SCHEDULE_PRIMARY = "schedule_primary", "Schedule's primary"
    SCHEDULE_BACKUP = "schedule_backup", "Schedule's backup"
    RESPONDER = "responder", "A person"
    TEAM = "team", "Everyone on a team"


class EscalationStep(models.Model):
    """One rung: notify ``target`` on ``channels`` (in parallel), then wait ``wait_seconds`` for an ack."""

    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField()
    target = models.CharField(max_length=20, choices=StepTarget.choices)
    schedule = models.ForeignKey(Schedule, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    responder = models.ForeignKey(Responder, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    channels = ArrayField(models.CharField(max_length=8, choices=ContactChannel.choices), default=_default_channels)
    wait_seconds = models.PositiveIntegerField(default=60, validators=[MinValueValidator(1), MaxValueValidator(86400)])

    class Meta:
        ordering = ["order"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "order"], name="step_order_once"),
            models.CheckConstraint(
                condition=(
                    Q(target__startswith="schedule_", schedule__isnull=False)
                    | Q(target="responder", responder__isnull=False)
                    | Q(target="team", team__isnull=False)
                ),
                name="step_target_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order}: {self.get_target_display()} ({', '.join(self.channels)}, {self.wait_seconds}s)"


class Incident(models.Model):
    """An urgent interaction being escalated. ``fence`` and ``next_step_at`` drive the ladder.

    ``position`` counts fired steps over all repeats (step ``position % n`` of repeat ``position // n``); the
    step at ``position`` fires at ``next_step_at`` and only by a task holding the current ``fence`` (every
    transition increments it, so a stale or redelivered task does nothing). ``policy_snapshot`` is the policy
    frozen at raise time: ``{"policy_id", "name", "repeat_count", "steps": [{"target", "schedule_id",
    "responder_id", "team_id", "channels", "wait_seconds"}, …]}``.
    """

    class Status(models.TextChoices):
        TRIGGERED = "triggered", "Triggered (paging)"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        UNACKNOWLEDGED = "unacknowledged", "Unacknowledged (ladder exhausted)"

    class AckVia(models.TextChoices):
        LINK = "link", "SMS link"
        SMS = "sms", "SMS reply"
        KEYPRESS = "keypress", "Keypress on the call"
        ADMIN = "admin", "Admin console"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="incidents")
    interaction = models.ForeignKey(Interaction, null=True, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, null=True, on_delete=models.PROTECT, related_name="+")
    urgency = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    reason = models.CharField(max_length=80, help_text="Short non-PHI label, e.g. 'emergency phrase'")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRIGGERED)
    policy_snapshot = models.JSONField(default=dict)
    position = models.PositiveIntegerField(default=0)
    fence = models.PositiveIntegerField(default=1)
    next_step_at = models.DateTimeField(null=True, blank=True)
    raised_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(Responder, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    ack_via = models.CharField(max_length=10, choices=AckVia.choices, blank=True)
    exhausted_at = models.DateTimeField(null=True, blank=True)
    admins_alerted_at = models.DateTimeField(null=True, blank=True, help_text="When the admin alert mail was sent")
    admins_alert_lease_until = models.DateTimeField(
        null=True, blank=True, help_text="An admin-alert send is in flight (or waits for its retry) until then"
    )
    sla_due_at = models.DateTimeField(
        null=True, blank=True, help_text="raised_at + the tenant's SLA target (sla_ack_seconds), frozen at raise"
    )
    sla_breached = models.BooleanField(default=False, help_text="Not acknowledged by sla_due_at")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(Responder, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolved_via = models.CharField(max_length=10, choices=AckVia.choices, blank=True)
    resolution_note = models.TextField(blank=True, help_text="Clinic-internal (may hold PHI): never texted")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["interaction"], name="one_incident_per_interaction"),
            models.CheckConstraint(condition=Q(urgency__gte=1) & Q(urgency__lte=5), name="incident_urgency_range"),
        ]
        indexes = [
            models.Index(fields=["tenant", "-raised_at"]),
            # the auditor scans due, still-paging incidents only
            models.Index(fields=["next_step_at"], condition=Q(status="triggered"), name="incident_due"),
            # ... and exhausted incidents whose admin alert has not gone out
            models.Index(
                fields=["exhausted_at"],
                condition=Q(status="unacknowledged", admins_alerted_at__isnull=True),
                name="incident_unalerted",
            ),
            # ... and recently acknowledged incidents whose hang-ups may need re-driving
            models.Index(fields=["acknowledged_at"], condition=Q(status="acknowledged"), name="incident_acknowledged"),
            # ... and open incidents whose SLA breach flag may be due
            models.Index(
                fields=["sla_due_at"],
                condition=Q(sla_breached=False, status__in=["triggered", "unacknowledged"]),
                name="incident_sla_open",
            ),
        ]

    def __str__(self) -> str:
        return f"Incident {str(self.id)[:8]} ({self.status})"

    @property
    def time_to_ack(self):
        return self.acknowledged_at - self.raised_at if self.acknowledged_at else None


class NotificationAttempt(models.Model):
    """One page of one responder on one channel at one step of one repeat: at most one, by constraint.

    ``status`` is our lifecycle (pending → sending → sent → delivered / failed; cancelled when the incident was
    acknowledged first; skipped for quiet hours); ``provider_status`` is Twilio's own, moved forward only.
    ``ambiguous`` marks a send whose request may have reached Twilio: it is reconciled before any resend.
    Once the incident is acknowledged, a call of any other attempt still queued, ringing or in progress is
    hung up: ``hangup_claims`` holds a request in flight (a lease: a dead worker's claim expires), ``hangup_sids``
    / ``hung_up_at`` record the provider's answer (a call ended that way before it was answered ends
    ``cancelled``). A call answered by an answering machine or fax ends the attempt ``failed``
    (``error_code`` ``answering-machine``); a verdict that came before the attempt's SID is held in
    ``machine_verdicts`` by CallSid until the SID it applies to is known.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent (accepted by the provider)"
        DELIVERED = "delivered", "Delivered / answered"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled (acknowledged first)"
        SKIPPED = "skipped", "Skipped (quiet hours)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="attempts")
    step_index = models.PositiveSmallIntegerField()
    repeat = models.PositiveSmallIntegerField()
    responder = models.ForeignKey(Responder, on_delete=models.PROTECT, related_name="attempts")
    channel = models.CharField(max_length=8, choices=ContactChannel.choices)
    to_number = models.CharField(max_length=20)
    from_number = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    provider_sid = models.CharField(max_length=64, blank=True)
    extra_sids = ArrayField(
        models.CharField(max_length=64),
        default=list,
        blank=True,
        help_text="SIDs of further messages/calls this attempt placed (a try presumed dead that went out after "
        "all); their webhooks are accepted as this attempt's",
    )
    provider_status = models.CharField(max_length=20, blank=True)
    error_code = models.CharField(max_length=20, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    tries = models.PositiveSmallIntegerField(default=0)
    ambiguous = models.BooleanField(default=False)
    step_due_at = models.DateTimeField(help_text="When the step was due (SLA: lateness = sent_at − this)")
    created_at = models.DateTimeField()
    next_try_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When the provider accepted the request")
    status_updated_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    hangup_sids = ArrayField(
        models.CharField(max_length=64),
        default=list,
        blank=True,
        help_text="CallSids of this attempt whose hang-up (the incident was acknowledged by someone else) the "
        "provider answered: ended, already over, or refused for good. Never asked again",
    )
    hangup_claims = models.JSONField(
        default=dict,
        blank=True,
        help_text="Hang-up requests in flight: {CallSid: ISO 8601 UTC time the request was claimed}. A claim "
        "older than the send timeout (stale_after) is presumed dead and may be taken again",
    )
    hung_up_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the provider last confirmed a hang-up after the acknowledgement "
        "(or said the call was already over)",
    )
    machine_verdicts = models.JSONField(
        default=dict,
        blank=True,
        help_text="Answering-machine verdicts that came while the attempt had no SID yet: {CallSid: Twilio "
        "AnsweredBy}. The attempt fails when the SID it records is one of them; others are ignored",
    )
    log_interaction = models.ForeignKey(Interaction, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "step_index", "repeat", "responder", "channel"], name="attempt_once"
            ),
            models.UniqueConstraint(
                fields=["channel", "provider_sid"], condition=~Q(provider_sid=""), name="attempt_sid_once"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "created_at"]),
            models.Index(
                fields=["status", "next_try_at"], condition=Q(status__in=["pending", "sending"]), name="attempt_open"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} → {self.responder} (step {self.step_index}, repeat {self.repeat}): {self.status}"


class AckToken(models.Model):
    """An acknowledge link's public half; the secret half is an HMAC over it and its bindings (never stored).

    The link is ``/a/<key>.<mac>`` with ``mac = HMAC-SHA256(SECRET_KEY, key|tenant|incident|attempt|responder)``;
    it expires at ``expires_at`` and is single-use (``used_at``).
    """

    key = models.CharField(max_length=16, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="ack_tokens")
    attempt = models.OneToOneField(NotificationAttempt, on_delete=models.CASCADE, related_name="ack_token")
    responder = models.ForeignKey(Responder, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"ack {self.key}"


class PipelineHeartbeat(models.Model):
    """The latest proof of life of one part of the escalation pipeline (not tenant data: the pipeline is shared).

    ``auditor``: written by the beat auditor each run (beat → ``escalation`` queue → worker); ``canary``: a task
    the auditor queues on the ``escalation`` queue, ``lag_seconds`` from queueing to running it.
    """

    class Source(models.TextChoices):
        AUDITOR = "auditor", "Beat's auditor"
        CANARY = "canary", "Canary through the escalation queue"

    source = models.CharField(max_length=16, choices=Source.choices, primary_key=True)
    at = models.DateTimeField()
    lag_seconds = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return f"{self.source} @ {self.at:%H:%M:%S} UTC"


class PipelineOutage(models.Model):
    """A period in which the pipeline gave no heartbeat for ``ESCALATION_HEARTBEAT_MAX_AGE`` seconds.

    At most one is open (``ended_at`` NULL) at a time, by constraint: two web processes detecting the same outage
    share one row, so its admin texts go out once.
    """

    pipeline = models.CharField(max_length=16, default="escalation")
    started_at = models.DateTimeField(help_text="When it was detected")
    last_heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="The newest heartbeat then")
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pipeline"], condition=Q(ended_at__isnull=True), name="one_open_outage")
        ]

    def __str__(self) -> str:
        return f"{self.pipeline} outage from {self.started_at:%Y-%m-%d %H:%M} UTC"


class OutageAlert(models.Model):
    """One admin text about one outage: at most one per (outage, tenant, number), by constraint.

    The row is the claim (inserted before the send); ``sent_at`` / ``provider_sid`` record the provider's answer.
    A send that failed keeps ``sent_at`` NULL and is tried again once ``claimed_at`` is older than the lease.
    """

    outage = models.ForeignKey(PipelineOutage, on_delete=models.CASCADE, related_name="alerts")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    to_number = models.CharField(max_length=20)
    claimed_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_sid = models.CharField(max_length=64, blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["outage", "tenant", "to_number"], name="outage_alert_once"),
        ]

    def __str__(self) -> str:
        return f"outage alert → {self.to_number}"


class IncidentNotice(models.Model):
    """A text that follows an acknowledgement: ``colleague_ack`` to each other responder who was paged ("acknowledged
    by Dr. Chen", no PHI), ``patient_holding`` to the patient. At most one per (incident, kind, number): the row,
    inserted before the send, is the claim."""

    class Kind(models.TextChoices):
        COLLEAGUE_ACK = "colleague_ack", "Colleague told it was acknowledged"
        PATIENT_HOLDING = "patient_holding", "Patient told a clinician will call"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    to_number = models.CharField(max_length=20)
    claimed_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_sid = models.CharField(max_length=64, blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "kind", "to_number"], name="incident_notice_once")]

    def __str__(self) -> str:
        return f"{self.kind} → {self.to_number}"


class ResponderContact(models.Model):
    """A call or SMS from a responder's number to the clinic line: claimed before the patient flow (a responder
    is never taken for a patient, so their words never raise an incident), once per MessageSid / CallSid.

    ``action`` is what it did; ``reply_text`` the SMS answer (no PHI). A ``connect`` bridges the responder to the
    patient: by SMS, a call placed to the responder (``bridge_sid``) that ``<Dial>``s the patient with the clinic's
    number as caller id; on a call, the same ``<Dial>`` at once. The responder's own words are not stored.
    """

    class Action(models.TextChoices):
        MENU = "menu", "Offered 1 (acknowledge) / 2 (connect)"
        ACK = "ack", "Acknowledged"
        CONNECT = "connect", "Connected to the patient"
        ALREADY = "already", "Already acknowledged by a colleague"
        NONE = "none", "No page open for them"
        NO_NUMBER = "no_number", "No patient number on file"
        RESOLVED = "resolved", "Resolved"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    responder = models.ForeignKey(Responder, on_delete=models.CASCADE, related_name="contacts")
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.CASCADE, related_name="contacts")
    channel = models.CharField(max_length=8, choices=ContactChannel.choices)
    provider_sid = models.CharField(max_length=64, help_text="The inbound MessageSid or CallSid")
    received_at = models.DateTimeField()
    action = models.CharField(max_length=10, choices=Action.choices)
    reply_text = models.CharField(max_length=320, blank=True)
    followed_up_at = models.DateTimeField(null=True, blank=True, help_text="When the reply/bridge was claimed")
    reply_sid = models.CharField(max_length=64, blank=True)
    bridge_sid = models.CharField(max_length=64, blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "channel", "provider_sid"], name="responder_contact_once"),
        ]
        indexes = [models.Index(fields=["tenant", "-received_at"])]

    def __str__(self) -> str:
        return f"{self.channel} from {self.responder_id}: {self.action}"


class PortalCode(models.Model):
    """A one-time code texted to the paged responder to open the incident portal behind their ack link.

    Only an HMAC of the code is stored (``SECRET_KEY``, bound to the link's key); it expires after 10 minutes and
    allows 5 wrong tries.
    """

    token = models.ForeignKey(AckToken, on_delete=models.CASCADE, related_name="portal_codes")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    failures = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["token", "-created_at"])]

    def __str__(self) -> str:
        return f"portal code for {self.token_id} (expires {self.expires_at:%H:%M} UTC)"


class PortalAccess(models.Model):
    """Every step on the responder portal: who (responder and/or staff user), what, when, from where."""

    class Action(models.TextChoices):
        CODE_SENT = "code_sent", "Code texted"
        CODE_FAILED = "code_failed", "Wrong or expired code"
        VERIFIED = "verified", "Code accepted"
        VIEW = "view", "Viewed the incident (PHI shown)"
        CALL = "call", "Called the patient (bridge)"
        RESOLVE = "resolve", "Resolved"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="portal_accesses")
    responder = models.ForeignKey(Responder, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=12, choices=Action.choices)
    at = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)
    detail = models.CharField(max_length=100, blank=True, help_text="e.g. the bridge call's SID")

    class Meta:
        indexes = [models.Index(fields=["incident", "at"])]

    def __str__(self) -> str:
        return f"{self.action} of {self.incident_id} at {self.at:%Y-%m-%d %H:%M:%S} UTC"
