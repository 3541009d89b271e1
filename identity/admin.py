"""Admin for tenants and identity conflicts (customers are in conversations/admin.py, with their timeline)."""

from django import forms
from django.contrib import admin, messages

from identity.admin_scoping import TenantScopedAdmin, TenantScopedInline
from identity.models import IdentityConflict, Tenant, TenantMembership, TenantPhoneNumber
from identity.services import MergeError, customer_merge


class PhoneNumberInline(TenantScopedInline):
    model = TenantPhoneNumber


class MembershipInline(TenantScopedInline):
    """Who works for the tenant. Only superusers grant or change access (users are not tenant-scoped)."""

    model = TenantMembership
    autocomplete_fields = ["user"]

    def has_add_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


class TenantForm(forms.ModelForm):
    """The Twilio auth token is write-only: never rendered back, and left as is when the field is blank."""

    twilio_auth_token = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted. Leave blank to keep the current token.")

    class Meta:
        model = Tenant
        fields = "__all__"

    def clean_twilio_auth_token(self):
        return self.cleaned_data["twilio_auth_token"] or (self.instance.twilio_auth_token if self.instance.pk else "")


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    form = TenantForm
    tenant_field = "pk"
    list_display = ["name", "slug", "timezone", "country", "state_ttl"]
    search_fields = ["name", "slug"]
    inlines = [PhoneNumberInline, MembershipInline]
    readonly_fields = ["widget_public_key", "created_at", "updated_at"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not (request.user.is_superuser or _is_tenant_admin(request.user)):  # only clinic admins see credentials
            fields = [f for f in fields if f not in ("twilio_account_sid", "twilio_auth_token")]
        return fields

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


def _is_tenant_admin(user) -> bool:
    return TenantMembership.objects.filter(user=user, role=TenantMembership.Role.ADMIN).exists()


@admin.register(IdentityConflict)
class IdentityConflictAdmin(TenantScopedAdmin):
    list_display = ["kind", "value", "resolved_customer", "other_customer", "detected_at", "closed_at"]
    list_filter = ["kind", ("closed_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["kind", "value", "resolved_customer", "other_customer", "detected_at", "closed_at", "closed_note"]
    actions = ["merge_into_resolved"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Merge: keep the resolved customer, fold the other into it")
    def merge_into_resolved(self, request, queryset):
        for conflict in queryset.filter(closed_at__isnull=True).select_related("resolved_customer", "other_customer"):
            try:
                customer_merge(survivor=conflict.resolved_customer, merged=conflict.other_customer,
                               performed_by=request.user)
            except MergeError as exc:
                self.message_user(request, f"{conflict}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Merged {conflict.other_customer} into {conflict.resolved_customer}.")
