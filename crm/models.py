"""CRM connectors: a tenant's connection to HubSpot / Salesforce / Zoho CRM, our-id → CRM-id map, the outbox.

- :class:`CrmConnection`: one per (tenant, provider); OAuth tokens encrypted at rest (Fernet, identity.fields);
  ``token_version`` (+1 per token change) and a refresh lease (``refresh_lease_until`` + fencing token) let one
  worker at a time refresh the tokens without holding a row lock across the vendor's token call.
- :class:`CrmRecordMap`: which CRM record a customer (contact), interaction (activity) or appointment (meeting /
  event) became; unique per (tenant, provider, kind, local id), so a retried delivery updates instead of
  creating a second record.
- :class:`CrmDelivery`: one outbox row per (connection, interaction, version) — ``version`` is the enrichment
  stamp, so a re-scored interaction is sent again (its activity is updated in place) — or per (connection,
  appointment, version), ``version`` being the appointment's change counter (book, reschedule, cancel). A claimed attempt holds a
  lease (``lease_expires_at``) and a fencing token (``lease_token``, +1 per claim): a worker that died or stalled
  cannot record a result once another worker has claimed the row.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from identity.fields import EncryptedTextField
from identity.models import Tenant


class CrmProvider(models.TextChoices):
    """CRMs we deliver to."""

    HUBSPOT = "hubspot", "HubSpot"
    SALESFORCE = "salesforce", "Salesforce"
    ZOHO = "zoho", "Zoho CRM"


class CrmConnection(models.Model):
    """A tenant's authorised connection to one CRM (OAuth 2.0 authorization-code grant with refresh tokens)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="crm_connections")
    provider = models.CharField(max_length=12, choices=CrmProvider.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    access_token = EncryptedTextField(blank=True, default="", help_text="Encrypted at rest.")
    refresh_token = EncryptedTextField(blank=True, default="", help_text="Encrypted at rest.")
    token_expires_at = models.DateTimeField(null=True, blank=True)
    token_version = models.PositiveIntegerField(
        default=0, help_text="+1 whenever the tokens change (refresh, reconnect): what a refresh compares and sets."
    )
    refresh_lease_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker is refreshing the tokens until then (no lock is held meanwhile)."
    )
    refresh_lease_token = models.CharField(max_length=32, blank=True, help_text="Fencing token of that refresh.")
    instance_url = models.URLField(
        max_length=300,
        blank=True,
        help_text="Salesforce instance_url / Zoho api_domain from the token answer; empty for HubSpot.",
    )
    accounts_url = models.URLField(
        max_length=300, blank=True, help_text="Zoho: the accounts server of the tenant's data centre."
    )
    external_account = models.CharField(
        max_length=200, blank=True, help_text="HubSpot portal id / Salesforce org id / Zoho org, for staff."
    )
    field_map = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "Optional: our summary field → a custom property/field name on the CRM activity, e.g. "
            '{"lead_score": "callsphere_lead_score__c"}. Allowed keys: channel, direction, intent, sentiment, '
            "lead_score, satisfaction, escalated. Transcript text is never sent."
        ),
    )
    sync_appointments = models.BooleanField(
        default=True,
        help_text="Send appointments (booked, moved, cancelled) as the CRM's meeting / event on the contact.",
    )
    appointment_reason = models.BooleanField(
        default=False,
        help_text="Also put the patient's reason for the visit (their words, PHI) in the meeting's description. "
        "Off by default: only 'Appointment', the calendar, times and status leave.",
    )
    last_error = models.CharField(max_length=500, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "provider"], name="crm_connection_once")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} ({self.status})"


class CrmRecordMap(models.Model):
    """Our id → the CRM's record id (contact for a customer, activity for an interaction)."""

    class Kind(models.TextChoices):
        CUSTOMER = "customer", "Customer → contact"
        INTERACTION = "interaction", "Interaction → activity"
        APPOINTMENT = "appointment", "Appointment → meeting / event"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, related_name="records")
    provider = models.CharField(max_length=12, choices=CrmProvider.choices)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    local_id = models.UUIDField()
    remote_type = models.CharField(max_length=40, help_text="e.g. contacts, calls, notes, Contact, Task, Calls.")
    remote_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "provider", "kind", "local_id"], name="crm_record_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.local_id} → {self.remote_type}/{self.remote_id}"


class CrmDelivery(models.Model):
    """One enriched interaction (at one enrichment version) or one appointment change (at one appointment
    version) to one connection: retry state, lease, errors. Exactly one of ``interaction`` / ``appointment``."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (rejected by the CRM, retries spent or connection disabled)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, related_name="deliveries")
    interaction = models.ForeignKey(
        "conversations.Interaction", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    appointment = models.ForeignKey(
        "conversations.Appointment", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    version = models.CharField(
        max_length=40, help_text="The interaction's enrichment stamp, or the appointment's version, when queued."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.PositiveIntegerField(default=0, help_text="Fencing token: +1 on every claim.")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "CRM deliveries"
        constraints = [
            models.UniqueConstraint(fields=["connection", "interaction", "version"], name="crm_delivery_once"),
            models.UniqueConstraint(
                fields=["connection", "appointment", "version"], name="crm_appointment_delivery_once"
            ),
            models.CheckConstraint(
                condition=Q(interaction__isnull=False, appointment__isnull=True)
                | Q(interaction__isnull=True, appointment__isnull=False),
                name="crm_delivery_one_subject",
            ),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="crm_delivery_due"),
            models.Index(fields=["tenant", "status", "-created_at"], name="crm_delivery_tenant_status"),
        ]

    def __str__(self) -> str:
        return f"{self.interaction_id or self.appointment_id} → {self.connection_id} ({self.status})"
