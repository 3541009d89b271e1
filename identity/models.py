"""Tenants, their phone numbers and staff, and the customers recognised across channels."""

import secrets
import uuid
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from identity.fields import EncryptedDateField, EncryptedTextField


def _validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name")


def _new_widget_key() -> str:
    return "pk_" + secrets.token_urlsafe(18)


def _default_state_ttl():
    return settings.DEFAULT_STATE_TTL


def _default_sms_idle_window():
    return settings.DEFAULT_SMS_IDLE_WINDOW


def _default_conversation_quiet_period():
    return settings.DEFAULT_CONVERSATION_QUIET_PERIOD


def _default_intents() -> dict:
    return {
        "book_appointment": ["I'd like to book an appointment", "can I schedule a visit", "make an appointment"],
        "reschedule_appointment": ["can we move my appointment", "reschedule", "change my appointment time"],
        "cancel_appointment": ["cancel my appointment", "I can't make it", "please cancel"],
        "billing": ["question about my bill", "how much does it cost", "insurance and payment"],
        "prescription": ["refill my prescription", "I need more medication", "pharmacy"],
        "emergency": ["chest pain", "can't breathe", "bleeding heavily", "collapsed"],
        "general_question": ["what are your opening hours", "where are you located", "do you accept"],
    }


def _default_emergency_phrases() -> list:
    return [
        "chest pain",
        "can't breathe",
        "cannot breathe",
        "not breathing",
        "unconscious",
        "collapsed",
        "severe bleeding",
        "bleeding heavily",
        "overdose",
        "suicidal",
        "stroke",
        "seizure",
    ]


class Tenant(models.Model):
    """A clinic or small business: its numbers, credentials, time zone and policies."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    short_name = models.CharField(max_length=40, help_text="Used in SMS and spoken text, e.g. 'Sunrise Clinic'.")
    timezone = models.CharField(max_length=64, default="UTC", validators=[_validate_timezone])
    country = models.CharField(max_length=2, default="US", help_text="ISO 3166 region for parsing local numbers.")
    state_ttl = models.DurationField(default=_default_state_ttl, help_text="How long session state lives.")
    sms_idle_window = models.DurationField(
        default=_default_sms_idle_window, help_text="An SMS exchange closes after this much silence."
    )
    conversation_quiet_period = models.DurationField(
        default=_default_conversation_quiet_period,
        validators=[MinValueValidator(timedelta(minutes=5))],
        help_text=(
            "A conversation with no activity on any channel for this long is closed and sent out "
            "(conversation.closed webhooks, CRM). What the patient was doing is remembered for the state TTL."
        ),
    )
    twilio_account_sid = models.CharField(max_length=64, blank=True)
    twilio_auth_token = EncryptedTextField(blank=True, help_text="Encrypted at rest.")
    widget_public_key = models.CharField(max_length=64, unique=True, default=_new_widget_key)
    allowed_widget_origins = ArrayField(models.CharField(max_length=255), default=list, blank=True)
    sms_help_text = models.CharField(
        max_length=320,
        default="Reply STOP to opt out. For emergencies call 911.",
        help_text="Sent in answer to HELP (with the clinic's short name before it).",
    )
    intents = models.JSONField(default=_default_intents, blank=True, help_text="intent name → example phrases")
    emergency_phrases = models.JSONField(default=_default_emergency_phrases, blank=True)
    lead_intents = models.JSONField(default=list, blank=True, help_text="Intents that count as a lead.")
    retain_transcripts_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Days after a session ends before its transcript and message texts are removed (rows and scores "
        "stay). Blank: kept.",
    )
    retain_recordings_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days before links to call and voicemail recordings are removed. Blank: kept."
    )
    retain_raw_emails_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Days before received emails' bodies, original messages and attachment files are removed. "
        "Blank: kept.",
    )
    retain_audit_days = models.PositiveIntegerField(
        default=6 * 366,
        validators=[MinValueValidator(6 * 365)],
        help_text="Days the access audit is kept (HIPAA: at least six years).",
    )
    llm_forbidden = models.BooleanField(
        default=False,
        help_text="Never send this clinic's patients' words to an LLM: the agent, triage and scoring run locally.",
    )
    require_staff_otp = models.BooleanField(
        default=False,
        help_text="Every staff login of this clinic must use two-factor sign-in (clinic admins always do).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class TenantPhoneNumber(models.Model):
    """An E.164 number a tenant owns; inbound Twilio traffic finds its tenant by ``To``."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="phone_numbers")
    number = models.CharField(max_length=20, unique=True, help_text="E.164, e.g. +15550100000")
    label = models.CharField(max_length=60, blank=True)

    def __str__(self) -> str:
        return self.number


class TenantMembership(models.Model):
    """Which tenant a staff user works for; admin scopes every list and form by it."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Clinic admin"
        STAFF = "staff", "Staff"
        SCHEDULING = "scheduling", "Clinic scheduling"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.STAFF)

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant}"


class Customer(models.Model):
    """A person the tenant talks to, on whatever channel. Merged customers stay as tombstones."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="customers")
    display_name = models.CharField(max_length=200, blank=True)
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    legal_hold = models.CharField(
        max_length=200, blank=True, help_text="While set (the reason, no PHI), the patient cannot be erased."
    )
    erased_at = models.DateTimeField(null=True, blank=True, editable=False)
    memory_opt_out = models.BooleanField(
        default=False,
        help_text="The patient asked not to be remembered across channels: the agent uses only the current "
        "session, and no new phone, email or browser is linked to this record.",
    )
    date_of_birth = EncryptedDateField(
        null=True, blank=True, help_text="From the patient's intake (encrypted at rest; never in SMS or speech)."
    )
    visit_reason = EncryptedTextField(
        blank=True, help_text="Reason for visit, in the patient's words (intake; encrypted at rest)."
    )
    preferred_language = models.CharField(
        max_length=8,
        blank=True,
        default="",
        choices=[("", "Not known (English)"), ("en", "English"), ("es", "Spanish")],
        help_text="The language the patient writes in (detected per message, or asked for); replies, "
        "confirmations, reminders and surveys use it.",
    )
    surveys_opted_out_at = models.DateTimeField(
        null=True, blank=True, help_text="The patient asked for no satisfaction surveys (set by the patient only)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return self.display_name or f"Customer {str(self.id)[:8]}"


class IdentifierKind(models.TextChoices):
    """Identifier kinds, in resolution priority order (first wins)."""

    AUTH = "auth", "Authenticated identity"
    PHONE = "phone", "Phone (E.164)"
    EMAIL = "email", "Email"
    COOKIE = "cookie", "Browser cookie"


KIND_PRIORITY = [IdentifierKind.AUTH, IdentifierKind.PHONE, IdentifierKind.EMAIL, IdentifierKind.COOKIE]


class CustomerIdentifier(models.Model):
    """One normalised identifier (E.164 phone, lower-case email, auth subject, cookie id) of a customer."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identifiers")
    kind = models.CharField(max_length=10, choices=IdentifierKind.choices)
    value = models.CharField(max_length=320)
    verified = models.BooleanField(default=False)
    sms_opted_out_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when this phone texted STOP; no outbound SMS while set."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "value"], name="identifier_unique_per_tenant"),
        ]
        indexes = [models.Index(fields=["customer", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class IdentityConflict(models.Model):
    """Identifiers given together that belong to two different customers; operators merge or dismiss."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=IdentifierKind.choices)
    value = models.CharField(max_length=320)
    resolved_customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    other_customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    detected_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_note = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "value", "resolved_customer", "other_customer"],
                condition=Q(closed_at__isnull=True),
                name="identity_conflict_open_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value} → {self.resolved_customer_id} / {self.other_customer_id}"


class CustomerMerge(models.Model):
    """Audit row of an operator's merge: who, when, and how many rows moved to the survivor."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    survivor = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    merged = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    performed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    performed_at = models.DateTimeField(auto_now_add=True)
    moved = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"{self.merged_id} → {self.survivor_id}"


class AuditEvent(models.Model):
    """One read (or privacy action) of patient data: who, which tenant and patient, what, when, from where.

    Append-only: written only by :func:`identity.audit.audit_record`; a database trigger refuses UPDATE and
    DELETE (retention purges set ``callsphere.audit_purge`` for their transaction). No PHI here: ``details``
    holds filter names, row counts and reasons, never a name, number or message text. Foreign keys are not
    constraints, so an event outlives (and never blocks deleting) what it points at.
    """

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        DENIED = "denied", "Denied"
        NOT_FOUND = "not_found", "Not found"
        REFUSED = "refused", "Refused"

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(db_index=True)
    tenant = models.ForeignKey(
        Tenant, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", editable=False
    )
    customer = models.ForeignKey(
        Customer, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", editable=False
    )
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        editable=False,
    )
    actor_api_key = models.CharField(max_length=16, blank=True, help_text="Prefix of the API key, if any.")
    actor = models.CharField(max_length=160, help_text="username, or api-key:<prefix>, or system:<name>")
    action = models.CharField(max_length=40, db_index=True)
    object_type = models.CharField(max_length=80, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "customer", "-at"]),
            models.Index(fields=["tenant", "actor", "-at"]),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_type}"
