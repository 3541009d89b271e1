"""Admin for tenants, identity conflicts and staff users (customers are in conversations/admin.py, with their
timeline; the user admin itself is in identity/admin_users.py)."""

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from identity.admin_scoping import (
    SuperuserEditsInline,
    TenantScopedAdmin,
    restrict_to_superusers,
    user_is_clinic_admin,
)
from identity.admin_users import ClinicUserAdmin
from identity.models import IdentityConflict, Tenant, TenantMembership, TenantPhoneNumber
from identity.services import MergeError, customer_merge

# Users: Django's UserAdmin for superusers, the clinic's own staff for clinic admins (identity/admin_users.py).
admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), ClinicUserAdmin)

# Rows of no tenant: groups (and so permissions) and the Celery beat schedule are for superusers only. Their
# apps come before identity in INSTALLED_APPS, so their admins are registered by now.
restrict_to_superusers(admin.site, [Group])
if apps.is_installed("django_celery_beat"):
    restrict_to_superusers(admin.site, apps.get_app_config("django_celery_beat").get_models())
# Login attempts and lockouts (django-axes) and two-factor devices (django-otp) belong to no tenant either: only
# superusers unlock a login or remove a lost authenticator. Their apps come after identity: register them now.
import axes.admin  # noqa: E402, F401
import django_otp.plugins.otp_totp.admin  # noqa: E402, F401

for _label in ("axes", "otp_totp"):
    restrict_to_superusers(admin.site, apps.get_app_config(_label).get_models())


class PhoneNumberInline(SuperuserEditsInline):
    """The tenant's Twilio numbers. They route webhooks and pick the tenant whose token checks signatures, so only
    superusers (the operator, after checking the number is in the clinic's Twilio account) add or change them;
    a clinic that could claim any number could capture another clinic's calls and texts."""

    model = TenantPhoneNumber


class MembershipInline(SuperuserEditsInline):
    """Who works for the tenant. Only superusers edit memberships here; clinic admins manage their staff (with
    membership and role) in the User admin."""

    model = TenantMembership
    autocomplete_fields = ["user"]


class TenantForm(forms.ModelForm):
    """The Twilio auth token is write-only: never rendered back, and left as is when the field is blank."""

    twilio_auth_token = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted. Leave blank to keep the current token.",
    )

    class Meta:
        model = Tenant
        fields = "__all__"

    def clean_twilio_auth_token(self):
        return self.cleaned_data["twilio_auth_token"] or (self.instance.twilio_auth_token if self.instance.pk else "")

    def clean(self):
        data = super().clean()
        quiet, ttl = data.get("conversation_quiet_period"), data.get("state_ttl")
        if quiet and ttl and quiet > ttl:
            self.add_error(
                "conversation_quiet_period",
                "Keep it within the state TTL: a conversation must close before what the patient said is forgotten.",
            )
        return data


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    form = TenantForm
    tenant_field = "pk"
    list_display = ["name", "slug", "timezone", "country", "conversation_quiet_period", "state_ttl"]
    search_fields = ["name", "slug"]
    inlines = [PhoneNumberInline, MembershipInline]
    readonly_fields = ["widget_public_key", "created_at", "updated_at"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not (request.user.is_superuser or user_is_clinic_admin(request.user)):  # only clinic admins see credentials
            fields = [f for f in fields if f not in ("twilio_account_sid", "twilio_auth_token")]
        return fields

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(IdentityConflict)
class IdentityConflictAdmin(TenantScopedAdmin):
    list_display = ["kind", "value", "resolved_customer", "other_customer", "detected_at", "closed_at"]
    list_filter = ["kind", ("closed_at", admin.EmptyFieldListFilter)]
    readonly_fields = [
        "kind",
        "value",
        "resolved_customer",
        "other_customer",
        "detected_at",
        "closed_at",
        "closed_note",
    ]
    actions = ["merge_into_resolved"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Merge: keep the resolved customer, fold the other into it", permissions=["change"])
    def merge_into_resolved(self, request, queryset):
        for conflict in queryset.filter(closed_at__isnull=True).select_related("resolved_customer", "other_customer"):
            try:
                customer_merge(
                    survivor=conflict.resolved_customer, merged=conflict.other_customer, performed_by=request.user
                )
            except MergeError as exc:
                self.message_user(request, f"{conflict}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Merged {conflict.other_customer} into {conflict.resolved_customer}.")


# The access audit's own admin (read-only) and the mixin patient-data admins inherit.
from identity import admin_audit as _admin_audit  # noqa: E402,F401
