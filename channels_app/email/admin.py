"""Admin for the email channel: mailboxes (IMAP settings, password write-only) and inbound emails (read-only).

Inbound HTML was sanitised by nh3 at ingest and is still never rendered here: admin shows its source, escaped
(``format_html``), next to the plain text — a hostile message stays inert in the operator's browser.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.html import format_html, format_html_join

from channels_app.models import EmailAttachment, EmailMailbox, InboundEmail
from identity.admin_audit import AuditedReadsAdmin
from identity.admin_scoping import TenantScopedAdmin


class EmailMailboxForm(forms.ModelForm):
    imap_password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the stored password.",
    )

    class Meta:
        model = EmailMailbox
        fields = "__all__"

    def clean_imap_password(self):
        value = self.cleaned_data.get("imap_password")
        return value if value else (self.instance.imap_password if self.instance.pk else "")


@admin.register(EmailMailbox)
class EmailMailboxAdmin(TenantScopedAdmin):
    """Clinic admins keep their mailbox's IMAP settings; the address routes inbound mail and is the From of
    outbound mail, so only superusers (after checking the clinic owns the domain) add mailboxes or change it."""

    form = EmailMailboxForm
    list_display = ["address", "tenant", "imap_host", "enabled", "last_uid", "last_polled_at", "last_error"]
    readonly_fields = ["uidvalidity", "last_uid", "last_polled_at", "last_error"]
    search_fields = ["address"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else [*fields, "address", "tenant"]

    def has_add_permission(self, request):
        return request.user.is_superuser


class EmailAttachmentInline(admin.TabularInline):
    model = EmailAttachment
    extra = 0
    fields = readonly_fields = ["filename", "content_type", "size", "sha256", "storage_path", "inline"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(InboundEmail)
class InboundEmailAdmin(AuditedReadsAdmin):
    audit_customer_field = "interaction__customer_id"

    list_display = ["received_at", "status", "reason", "from_address", "subject", "identity_confirmed", "source"]
    list_filter = ["status", "source", "identity_confirmed"]
    search_fields = ["from_address", "subject", "message_id"]
    inlines = [EmailAttachmentInline]
    exclude = ["html"]
    readonly_fields = [f.name for f in InboundEmail._meta.fields if f.name != "html"] + ["html_source", "headers"]

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="HTML (sanitised; shown as source, never rendered)")
    def html_source(self, obj: InboundEmail):
        if not obj.html:
            return "—"
        return format_html('<pre style="white-space:pre-wrap;max-height:30em;overflow:auto">{}</pre>', obj.html)

    @admin.display(description="Threading headers")
    def headers(self, obj: InboundEmail):
        rows = [("Message-ID", obj.message_id), ("In-Reply-To", obj.in_reply_to), ("References", obj.references)]
        return format_html_join("", "<div><strong>{}</strong>: {}</div>", rows)
