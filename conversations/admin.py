"""Operator console: customers with their cross-channel timeline, conversations, and ``call_logs``."""

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.template.response import TemplateResponse

from conversations.admin_render import render_timeline, render_transcript
from conversations.agent.admin import start_fresh_action  # also registers the agent's admins
from conversations.analytics.admin import render_customer_360
from conversations.inbox.selectors import transcript_matches
from conversations.models import ChannelMessage, Conversation, Interaction, SessionState
from identity.admin_audit import AuditedReadsAdmin
from identity.admin_scoping import TenantScopedInline, scope_queryset, user_is_clinic_admin
from identity.models import Customer, CustomerIdentifier
from identity.privacy import ErasureRefused, customer_erase
from identity.roles import user_reads_transcripts
from identity.services import MergeError, customer_merge

TIMELINE_LIMIT = 50


class IdentifierInline(TenantScopedInline):
    """A customer's phones, emails and logins, read-only: ``verified`` is earned (carrier, code, login) and
    ``sms_opted_out_at`` is the patient's STOP, lifted only by their own START (TCPA / CTIA) — staff may not
    clear either, and deleting an identifier would forget the opt-out with it."""

    model = CustomerIdentifier
    fields = ["kind", "value", "verified", "sms_opted_out_at", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Customer)
class CustomerAdmin(AuditedReadsAdmin):
    audit_customer_field = "pk"
    list_display = ["__str__", "identifiers_list", "created_at"]
    search_fields = ["display_name", "identifiers__value"]
    ordering = ["-created_at"]
    readonly_fields = [
        "merged_into",
        "surveys_opted_out_at",
        "created_at",
        "updated_at",
        "customer_360",
        "timeline",
    ]
    inlines = [IdentifierInline]
    actions = ["merge_customers", "erase_customers"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("identifiers")

    def get_readonly_fields(self, request, obj=None):
        """The timeline (transcripts) and Customer 360 (sentiment of what was said): not for roles that must not
        read conversations (identity.roles.user_reads_transcripts)."""
        fields = list(super().get_readonly_fields(request, obj))
        if user_reads_transcripts(request.user):
            return fields
        return [f for f in fields if f not in ("timeline", "customer_360")]

    @admin.display(description="Identifiers")
    def identifiers_list(self, obj):
        return ", ".join(str(i) for i in obj.identifiers.all())

    @admin.display(description="Customer 360 (last 90 days: per channel and per week)")
    def customer_360(self, obj):
        return render_customer_360(obj)

    @admin.display(description="Timeline (all channels, newest first)")
    def timeline(self, obj):
        rows = Interaction.objects.filter(customer=obj).order_by("-started_at")[:TIMELINE_LIMIT]
        return render_timeline(rows)

    @admin.action(description="Erase the selected patients (GDPR)…", permissions=["change"])
    def erase_customers(self, request, queryset):
        if not (request.user.is_superuser or user_is_clinic_admin(request.user)):
            self.message_user(request, "Only clinic admins may erase patients.", messages.ERROR)
            return None
        customers = list(queryset)
        if request.POST.get("confirm") != "yes":
            return TemplateResponse(
                request,
                "admin/conversations/customer_erase.html",
                {
                    **self.admin_site.each_context(request),
                    "customers": customers,
                    "opts": self.model._meta,
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                    "title": "Erase patients",
                },
            )
        for customer in customers:
            try:
                customer_erase(customer=customer, request=request)
            except ErasureRefused as exc:
                self.message_user(request, f"Customer {str(customer.pk)[:8]} not erased: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Customer {str(customer.pk)[:8]} erased.")
        return None

    @admin.action(description="Merge the two selected customers…", permissions=["change"])
    def merge_customers(self, request, queryset):
        customers = list(queryset.annotate(n=Count("interactions")))
        if len(customers) != 2:
            self.message_user(request, "Select exactly two customers to merge.", messages.ERROR)
            return None
        if request.POST.get("survivor"):
            survivor = next((c for c in customers if str(c.pk) == request.POST["survivor"]), None)
            if survivor is None:
                self.message_user(request, "Choose one of the two customers to keep.", messages.ERROR)
                return None
            merged = customers[1] if survivor is customers[0] else customers[0]
            try:
                customer_merge(survivor=survivor, merged=merged, performed_by=request.user)
            except MergeError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return None
            self.message_user(request, f"Merged {merged} into {survivor}; nothing was deleted.")
            return None
        return TemplateResponse(
            request,
            "admin/conversations/customer_merge.html",
            {
                **self.admin_site.each_context(request),
                "customers": customers,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "title": "Merge customers",
            },
        )


class ChannelMessageInline(TenantScopedInline):
    model = ChannelMessage
    fields = ["direction", "provider_id", "status", "error_code", "recipient", "created_at", "status_updated_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class ScopedValuesFilter(admin.SimpleListFilter):
    """A list filter whose choices are the distinct values in the user's own tenant only."""

    field = ""

    def lookups(self, request, model_admin):
        qs = scope_queryset(model_admin.model.objects.all(), request.user)
        values = qs.exclude(**{self.field: ""}).order_by(self.field).values_list(self.field, flat=True).distinct()
        return [(v, v) for v in values[:100]]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class IntentFilter(ScopedValuesFilter):
    title, parameter_name, field = "intent", "intent", "intent"


class UrgencyFilter(admin.SimpleListFilter):
    title, parameter_name = "urgency", "urgency"

    def lookups(self, request, model_admin):
        return [
            ("5", "5 (emergency)"),
            ("4", "4 (urgent)"),
            ("3", "3"),
            ("2", "2"),
            ("1", "1 (routine)"),
            ("none", "Not assessed"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(urgency__isnull=True)
        if self.value() in ("1", "2", "3", "4", "5"):
            return queryset.filter(urgency=int(self.value()))
        return queryset


@admin.register(Interaction)
class InteractionAdmin(AuditedReadsAdmin):
    list_display = [
        "started_at",
        "channel",
        "direction",
        "customer",
        "ended_at",
        "urgency",
        "sentiment",
        "intent",
        "lead_score",
        "satisfaction",
        "escalated",
    ]
    list_filter = ["channel", "direction", UrgencyFilter, "escalated", IntentFilter, "started_at"]
    search_fields = ["customer__identifiers__value", "customer__display_name"]
    search_help_text = "Words from the conversation (full-text), or the patient's name, phone or email."
    date_hierarchy = "started_at"
    ordering = ["-started_at"]
    list_select_related = ["customer"]
    readonly_fields = [f.name for f in Interaction._meta.fields if f.name != "transcript"] + ["transcript_html"]
    exclude = ["transcript"]
    inlines = [ChannelMessageInline]

    def has_add_permission(self, request):
        return False

    def get_search_results(self, request, queryset, search_term):
        """What was said (PostgreSQL full-text search on the GIN index), or the patient's name / identifiers."""
        if not search_term.strip():
            return queryset, False
        customers = scope_queryset(Customer.objects.all(), request.user).filter(
            Q(display_name__icontains=search_term) | Q(identifiers__value__icontains=search_term)
        )
        return queryset.filter(transcript_matches(search_term) | Q(customer__in=customers.values("pk"))), False

    @admin.display(description="Transcript")
    def transcript_html(self, obj):
        return render_transcript(obj.transcript)


class StateInline(TenantScopedInline):
    model = SessionState
    fields = ["key", "value", "updated_at", "expires_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class InteractionInline(TenantScopedInline):
    model = Interaction
    fields = ["channel", "direction", "started_at", "ended_at", "intent", "sentiment", "escalated"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(AuditedReadsAdmin):
    list_display = ["id", "customer", "status", "opened_at", "last_activity_at", "closed_at"]
    list_filter = ["status"]
    search_fields = ["customer__identifiers__value", "customer__display_name"]
    ordering = ["-last_activity_at"]
    list_select_related = ["customer"]
    readonly_fields = ["customer", "status", "opened_at", "last_activity_at", "closed_at"]
    inlines = [InteractionInline, StateInline]
    actions = [start_fresh_action]

    def has_add_permission(self, request):
        return False


# API keys, webhook endpoints/deliveries and the dashboards register themselves.
from conversations.api import admin as _api_admin  # noqa: E402,F401
from conversations.inbox import admin as _inbox_admin  # noqa: E402,F401
from conversations.recordings import admin as _recordings_admin  # noqa: E402,F401
from conversations.triage import admin as _triage_admin  # noqa: E402,F401
from conversations.webhooks import admin as _webhooks_admin  # noqa: E402,F401
