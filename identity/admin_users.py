"""The User admin: Django's ``UserAdmin`` for superusers, a tenant-scoped staff admin for clinic admins.

Who sees what at ``/admin/auth/user/``:

- superusers: Django's ``UserAdmin`` unchanged (all users, groups, permissions, delete);
- clinic admins (membership role ``admin``): the non-superuser users of their own tenant only. They add staff
  (user + membership of their tenant + role group, one transaction), change names / email / role, deactivate
  and reactivate, reset passwords with Django's admin password form, unlock a sign-in locked by repeated
  failures (django-axes) and reset a lost TOTP authenticator (``identity.staff_security``, audited). Users holding permissions beyond the
  role groups are listed read-only. No field for superuser, staff flag, groups, permissions or tenant exists
  in their forms, they cannot change their own role or active flag, and nobody but a superuser deletes users.
  Another tenant's user or a superuser answers 404 on every URL (change, password, history, delete);
- everyone else (plain staff, staff without a membership): no permission at all (403), whatever model
  permissions they were given.

Every write is recorded in the admin log (``LogEntry``) by Django, actions included.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import gettext_lazy as _

from identity.admin_scoping import user_is_clinic_admin, user_tenant_id
from identity.forms import StaffUserChangeForm, StaffUserCreationForm
from identity.models import Tenant, TenantMembership
from identity.staff import (
    STAFF_EDITABLE_FIELDS,
    staff_active_set,
    staff_can_manage,
    staff_manageable,
    staff_member_create,
    staff_member_update,
    staff_visible_to,
)
from identity.staff_security import staff_lockout_reset, staff_otp_reset


def _clinic_admin(request) -> bool:
    """A clinic admin acting as such (superusers always get Django's own UserAdmin behaviour)."""
    return not request.user.is_superuser and user_is_clinic_admin(request.user)


class ClinicUserAdmin(UserAdmin):
    """``UserAdmin`` for superusers; the clinic's own staff, and nothing more, for clinic admins."""

    staff_add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "password1", "password2")}),
        (_("Personal info"), {"fields": ("first_name", "last_name", "email")}),
        ("Clinic", {"fields": ("role",)}),
    )
    staff_list_display = ("username", "email", "first_name", "last_name", "clinic_role", "is_active", "last_login")
    staff_list_filter = ("is_active", "membership__role")
    actions = ["deactivate_users", "reactivate_users", "unlock_sign_in", "reset_two_factor"]

    # --- what a clinic admin may see and do -------------------------------------------------------------

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(pk__in=staff_visible_to(request.user).values("pk")).select_related("membership")

    def has_module_permission(self, request):
        return request.user.is_superuser or _clinic_admin(request)

    def has_view_permission(self, request, obj=None):
        if request.user.is_superuser:
            return super().has_view_permission(request, obj)
        return _clinic_admin(request) and (obj is None or staff_visible_to(request.user).filter(pk=obj.pk).exists())

    def has_add_permission(self, request):
        return request.user.is_superuser or _clinic_admin(request)

    def has_change_permission(self, request, obj=None):
        if request.user.is_superuser:
            return super().has_change_permission(request, obj)
        return _clinic_admin(request) and (obj is None or staff_can_manage(request.user, obj))

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    # --- forms ------------------------------------------------------------------------------------------

    def get_form(self, request, obj=None, **kwargs):
        if _clinic_admin(request):
            form = StaffUserCreationForm if obj is None else StaffUserChangeForm
            # ModelAdmin.get_form drops read-only declared fields of ``self.form`` only, not of the form passed
            # here: drop them ourselves, or a posted ``role`` would still be accepted for a read-only role.
            dropped = {f: None for f in self.get_readonly_fields(request, obj) if f in form.declared_fields}
            kwargs["form"] = type(form.__name__, (form,), dropped) if dropped else form
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if not _clinic_admin(request):
            return super().get_fieldsets(request, obj)
        if obj is None:
            return self.staff_add_fieldsets
        role_editable = self._role_editable(request, obj)
        return (
            (None, {"fields": ("username", "password")}),
            (_("Personal info"), {"fields": ("first_name", "last_name", "email")}),
            ("Clinic", {"fields": ("role", "is_active") if role_editable else ("clinic_role", "is_active")}),
            (_("Important dates"), {"fields": ("last_login", "date_joined")}),
        )

    def get_readonly_fields(self, request, obj=None):
        if not _clinic_admin(request):
            return super().get_readonly_fields(request, obj)
        readonly = ["clinic_role", "last_login", "date_joined"]
        if obj is not None and not self._role_editable(request, obj):
            # Listing the form's declared ``role`` here also drops it from the form (ModelAdmin.get_form).
            readonly += ["role", "is_active"]
        return readonly

    def _role_editable(self, request, obj) -> bool:
        """Role and active flag of ``obj``: editable by a clinic admin for the staff they manage, not for
        themselves (no demoting or locking yourself out, nor the clinic out of its last admin)."""
        return obj.pk != request.user.pk and self.has_change_permission(request, obj)

    def get_list_display(self, request):
        return self.staff_list_display if _clinic_admin(request) else super().get_list_display(request)

    def get_list_filter(self, request):
        return self.staff_list_filter if _clinic_admin(request) else super().get_list_filter(request)

    @admin.display(description="Role", ordering="membership__role")
    def clinic_role(self, obj):
        try:
            return obj.membership.get_role_display()
        except TenantMembership.DoesNotExist:
            return "–"

    # --- writes -----------------------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        if not _clinic_admin(request):
            return super().save_model(request, obj, form, change)
        role = form.cleaned_data.get("role")
        if not change:
            staff_member_create(tenant=Tenant.objects.get(pk=user_tenant_id(request.user)), user=obj, role=role)
            return None
        fields = [f for f in form.changed_data if f in STAFF_EDITABLE_FIELDS]
        role_changed = "role" in form.changed_data and self._role_editable(request, obj)
        staff_member_update(user=obj, fields=fields, role=role if role_changed else None)
        return None

    def save_related(self, request, form, formsets, change):
        if not _clinic_admin(request):
            super().save_related(request, form, formsets, change)  # clinic forms have no m2m (groups, perms)

    @admin.action(description="Deactivate the selected users (they can no longer log in)", permissions=["change"])
    def deactivate_users(self, request, queryset):
        self._set_active(request, queryset, active=False)

    @admin.action(description="Reactivate the selected users", permissions=["change"])
    def reactivate_users(self, request, queryset):
        self._set_active(request, queryset, active=True)

    @admin.action(description="Unlock sign-in (clear failed login attempts)", permissions=["change"])
    def unlock_sign_in(self, request, queryset):
        targets = self._targets(request, queryset)
        done = 0
        for user in targets:
            if staff_lockout_reset(user=user, request=request):
                self.log_change(request, user, "Unlocked sign-in (failed login attempts cleared).")
                done += 1
        self.message_user(request, f"Unlocked {done} user(s); the others were not locked.")
        self._warn_skipped(request, queryset, targets)

    @admin.action(
        description="Reset two-factor (they enrol a new authenticator at their next sign-in)", permissions=["change"]
    )
    def reset_two_factor(self, request, queryset):
        targets = self._targets(request, queryset)
        done = 0
        for user in targets:
            if staff_otp_reset(user=user, request=request):
                self.log_change(request, user, "Reset two-factor (authenticator removed).")
                done += 1
        self.message_user(request, f"Reset two-factor for {done} user(s); the others had no authenticator.")
        self._warn_skipped(request, queryset, targets)

    def _targets(self, request, queryset):
        """The selected users ``request.user`` may change, never themselves."""
        targets = queryset.exclude(pk=request.user.pk)
        if not request.user.is_superuser:
            targets = targets.filter(pk__in=staff_manageable(request.user).values("pk"))
        return targets

    def _set_active(self, request, queryset, *, active: bool) -> None:
        targets = self._targets(request, queryset)
        done = 0
        for user in targets:
            if staff_active_set(user=user, active=active):
                self.log_change(request, user, [{"changed": {"fields": ["Active"]}}])
                done += 1
        self.message_user(request, f"{'Reactivated' if active else 'Deactivated'} {done} user(s).")
        self._warn_skipped(request, queryset, targets)

    def _warn_skipped(self, request, queryset, targets) -> None:
        skipped = queryset.count() - targets.count()
        if skipped:
            self.message_user(
                request,
                f"Skipped {skipped} selected user(s) you cannot change: yourself, or users "
                "with permissions beyond the clinic roles.",
                messages.WARNING,
            )
