"""Models of the email channel: tenant mailboxes (IMAP settings + watermark), per-conversation reply tokens,
every inbound email (accepted, ignored or rejected, with the reason), attachments, and outbound email headers.

Provider-level rows (``conversations.ChannelMessage``, channel ``email``, ``provider_id`` = the Message-ID)
and the ``call_logs`` rows stay in ``conversations``; these tables hold what only email has.
"""

from __future__ import annotations

import secrets
import uuid

from django.db import models
from django.db.models import Q

from conversations.models import ChannelMessage, Conversation, Interaction
from identity.fields import EncryptedTextField
from identity.models import Tenant


def _new_reply_token() -> str:
    # 16 chars of [a-z0-9]: lower-case because some MTAs fold local parts; ~82 bits of entropy.
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


class EmailMailbox(models.Model):
    """A tenant's front-desk address and, when ``imap_host`` is set, the IMAP mailbox polled for it.

    ``address`` routes inbound mail (webhooks) to the tenant and is the ``From`` of what we send; replies go to
    its plus-address ``local+<token>@domain`` (:class:`EmailThread`). IMAP state: ``uidvalidity`` and
    ``last_uid`` are the watermark (RFC 3501 §2.3.1.1: UIDs are stable only within one UIDVALIDITY), advanced in
    the same transaction as each message's ingest, so a restart neither re-processes nor skips a message.
    ``lease_until`` / ``lease_token`` keep two pollers off one mailbox (a claim: :mod:`identity.leases`).
    """

    class Security(models.TextChoices):
        SSL = "ssl", "Implicit TLS (port 993)"
        STARTTLS = "starttls", "STARTTLS (port 143)"
        NONE = "none", "None (local test servers only)"

    class InitialSync(models.TextChoices):
        NEW = "new", "Only mail that arrives after the first poll"
        ALL = "all", "Everything already in the folder"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="email_mailboxes")
    address = models.EmailField(unique=True, help_text="The clinic's address, lower-case, e.g. frontdesk@clinic.com")
    display_name = models.CharField(max_length=100, blank=True, help_text="Shown in From; default: short name.")
    imap_host = models.CharField(max_length=255, blank=True, help_text="Empty: inbound arrives by webhook only.")
    imap_port = models.PositiveIntegerField(default=993)
    imap_security = models.CharField(max_length=10, choices=Security.choices, default=Security.SSL)
    imap_username = models.CharField(max_length=255, blank=True)
    imap_password = EncryptedTextField(blank=True, help_text="Encrypted at rest.")
    imap_folder = models.CharField(max_length=255, default="INBOX")
    initial_sync = models.CharField(max_length=5, choices=InitialSync.choices, default=InitialSync.NEW)
    enabled = models.BooleanField(default=True)
    uidvalidity = models.BigIntegerField(null=True, blank=True, editable=False)
    last_uid = models.BigIntegerField(default=0, editable=False)
    last_polled_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    lease_token = models.CharField(max_length=32, blank=True, editable=False)

    class Meta:
        verbose_name_plural = "email mailboxes"

    def __str__(self) -> str:
        return self.address

    def save(self, *args, **kwargs):
        self.address = (self.address or "").strip().lower()
        super().save(*args, **kwargs)

    @property
    def polls_imap(self) -> bool:
        return bool(self.enabled and self.imap_host)


class EmailThread(models.Model):
    """The per-conversation reply token: replies to ``local+<token>@domain`` resume ``conversation``."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, related_name="email_thread")
    token = models.CharField(max_length=32, unique=True, default=_new_reply_token)
    subject = models.CharField(max_length=255, blank=True, help_text="Subject of the thread's first message.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"thread {self.token}"


class InboundEmail(models.Model):
    """Every message handed to the ingest service, with what became of it.

    ``status``: ``accepted`` (a customer turn; ``channel_message`` set), ``ignored`` (auto-reply, bounce, mail
    loop: recorded, never answered), ``rejected`` (oversize, malformed, no tenant: ``reason`` says why) or
    ``quarantined`` (processing failed: the raw message kept, the admins alerted — ``alerted_at``; see
    :mod:`channels_app.email.quarantine`).
    ``message_id`` is unique per tenant, so a redelivered message (IMAP after a restart, a webhook retry, the
    same mail by both paths) is one row and one turn. ``html`` is already sanitised (nh3); ``text`` is the
    full plain text; ``reply_text`` the new part only (quoted history and signature removed).
    """

    class Status(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        IGNORED = "ignored", "Ignored (auto-reply / bounce)"
        REJECTED = "rejected", "Rejected"
        QUARANTINED = "quarantined", "Quarantined (could not be processed)"

    class Source(models.TextChoices):
        IMAP = "imap", "IMAP"
        WEBHOOK = "webhook", "Inbound webhook (anymail)"
        RAW = "raw", "Raw endpoint (simulate)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    mailbox = models.ForeignKey(EmailMailbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=10, choices=Source.choices)
    status = models.CharField(max_length=12, choices=Status.choices)
    reason = models.CharField(max_length=200, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    in_reply_to = models.CharField(max_length=255, blank=True)
    references = models.TextField(blank=True)
    from_address = models.CharField(max_length=320, blank=True)
    from_name = models.CharField(max_length=200, blank=True)
    to_addresses = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    text = models.TextField(blank=True)
    reply_text = models.TextField(blank=True)
    html = models.TextField(blank=True, help_text="Sanitised with nh3 at ingest; still rendered escaped in admin.")
    size = models.PositiveIntegerField(default=0, help_text="Bytes of the RFC 5322 message.")
    raw_path = models.CharField(max_length=300, blank=True, help_text="The original message on default storage.")
    imap_uid = models.BigIntegerField(null=True, blank=True)
    identity_confirmed = models.BooleanField(
        default=True, help_text="False: a sender we do not know replied on a known thread; confirm who it is."
    )
    interaction = models.ForeignKey(Interaction, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    channel_message = models.OneToOneField(
        ChannelMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_email"
    )
    triage = models.JSONField(default=dict, blank=True, help_text="What the EmailTriageAgent decided.")
    received_at = models.DateTimeField()
    triaged_at = models.DateTimeField(null=True, blank=True)
    alerted_at = models.DateTimeField(null=True, blank=True, help_text="When the admins were told (quarantine).")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "message_id"], condition=~Q(message_id=""), name="inbound_email_once_per_tenant"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "-received_at"]),
            # the triage redrive's scan (channels_app.email.triage.email_triage_redrive): accepted, not triaged
            models.Index(
                fields=["received_at"],
                name="inbound_email_untriaged",
                condition=Q(status="accepted", triaged_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.status}: {self.subject[:60] or self.message_id}"


class EmailAttachment(models.Model):
    """An attachment of an inbound email: metadata here, bytes on the default storage (never in a transcript)."""

    email = models.ForeignKey(InboundEmail, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=127)
    size = models.PositiveIntegerField(help_text="Bytes (decoded).")
    sha256 = models.CharField(max_length=64)
    storage_path = models.CharField(max_length=300, blank=True, help_text="Empty when not stored (too large).")
    inline = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.filename or '(unnamed)'} ({self.content_type}, {self.size} B)"


class OutboundEmail(models.Model):
    """The email headers of one outbound ``ChannelMessage`` (channel ``email``): what delivery puts on the wire.

    ``message_id`` is chosen before sending (so a retried send reuses it) and becomes the ChannelMessage's
    ``provider_id`` once handed to the backend. ``ics`` holds the calendar attachment of a confirmation.
    """

    class Kind(models.TextChoices):
        REPLY = "reply", "Reply"
        CONFIRMATION = "confirmation", "Appointment confirmation"
        REMINDER = "reminder", "Appointment reminder"
        SURVEY = "survey", "Satisfaction survey"

    channel_message = models.OneToOneField(ChannelMessage, on_delete=models.CASCADE, related_name="outbound_email")
    kind = models.CharField(max_length=15, choices=Kind.choices)
    message_id = models.CharField(max_length=255, unique=True)
    in_reply_to = models.CharField(max_length=255, blank=True)
    references = models.TextField(blank=True)
    subject = models.CharField(max_length=255)
    from_header = models.CharField(max_length=400)
    reply_to = models.CharField(max_length=320)
    ics = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject[:60]}"


class OutboundDelivery(models.Model):
    """The send state of one outbound SMS or call (``ChannelMessage``) while it is handed to the provider.

    The provider call runs outside any transaction: a claim (``attempts`` + 1, ``in_flight``, ``lease_until``)
    is committed first, then the request is sent, then the result is recorded. ``in_flight`` stays True when
    the outcome is unknown (a 5xx, a read timeout, a worker killed mid-request), so the next attempt first
    looks the message or call up at the provider (created since ``first_claimed_at`` minus a margin) before
    sending again. ``lease_until`` keeps a second worker off a row whose send is still running.
    """

    message = models.OneToOneField(ChannelMessage, on_delete=models.CASCADE, primary_key=True, related_name="delivery")
    attempts = models.PositiveIntegerField(default=0)
    first_claimed_at = models.DateTimeField()
    claimed_at = models.DateTimeField()
    lease_until = models.DateTimeField()
    in_flight = models.BooleanField(default=False, help_text="An attempt's outcome is unknown: reconcile first.")

    def __str__(self) -> str:
        return f"delivery of message {self.message_id} (attempt {self.attempts})"


class InboundSms(models.Model):
    """An inbound SMS accepted by the webhook and not yet recorded: the request stores this row and queues the
    intake (:mod:`channels_app.sms.intake`), which records the message and deletes the row in one transaction.

    So the table holds only messages in flight (milliseconds to seconds) and those the intake failed on
    ``MAX_ATTEMPTS`` times or not recorded within an hour (``quarantined``: kept, listed in admin for staff to read
    and answer). ``params``
    are Twilio's webhook parameters as checked by :func:`channels_app.sms.services.sms_params_check`.
    ``lane`` is the queue the intake runs on: ``escalation`` when the local triage rules saw an emergency or an
    urgent message (its own unniced workers, ahead of any backlog of ordinary texts), else the default queue.
    One row per (tenant, MessageSid): a Twilio retry while the first is in flight adds nothing.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        QUARANTINED = "quarantined", "Quarantined (could not be recorded)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    message_sid = models.CharField(max_length=64)
    params = models.JSONField()
    lane = models.CharField(max_length=16, default="celery")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True, help_text="The exception's type, never its text.")
    received_at = models.DateTimeField()
    queued_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When its intake task was last queued; empty: not queued (broker down, failed).",
    )

    class Meta:
        verbose_name = "inbound SMS not yet recorded"
        verbose_name_plural = "inbound SMS not yet recorded"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "message_sid"], name="inbound_sms_once_per_tenant"),
        ]
        indexes = [
            # the intake redrive's scan (channels_app.sms.intake.sms_intake_redrive): pending, oldest first
            models.Index(fields=["received_at"], name="inbound_sms_pending", condition=Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.status}: {self.message_sid}"
