"""Tenant scoping for Django admin: staff see and pick only their own tenant's rows.

Every ``ModelAdmin`` of a tenant-owned model inherits :class:`TenantScopedAdmin`. Superusers see everything;
a staff user with a :class:`~identity.models.TenantMembership` sees rows of that tenant only (list, change
form, autocomplete, actions, foreign-key choices, including choices of staff users); a staff user without one
sees nothing: no app on the index, empty lists, and no add / change / delete anywhere.

Models that belong to no tenant (``auth.Group``, django-celery-beat's schedules and tasks) are for superusers
only: :func:`restrict_to_superusers` re-registers their admins behind :class:`SuperuserOnlyMixin`.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model

from identity.models import Tenant, TenantMembership

_UNSET = object()


def _membership(user) -> tuple | None:
    """``(tenant_id, role)`` of ``user``'s membership, cached on the user object for the request; or None."""
    if not getattr(user, "is_authenticated", False):
        return None
    cached = getattr(user, "_cs_membership", _UNSET)
    if cached is _UNSET:
        cached = TenantMembership.objects.filter(user=user).values_list("tenant_id", "role").first()
        user._cs_membership = cached
    return cached


def user_tenant_id(user):
    """The tenant id (UUID) of a staff user, or None (anonymous users and users without a membership)."""
    membership = _membership(user)
    return membership[0] if membership else None


def user_role(user) -> str | None:
    """The clinic role (``"staff"``, ``"admin"``, ``"scheduling"``) of ``user``'s membership, or None."""
    membership = _membership(user)
    return membership[1] if membership else None


def user_is_clinic_admin(user) -> bool:
    """True when ``user`` has a membership with role ``admin`` (superusers without one: False)."""
    membership = _membership(user)
    return bool(membership) and membership[1] == TenantMembership.Role.ADMIN


def in_a_tenant(user) -> bool:
    """Superusers, and users with a membership: the only users the admin lets write anything."""
    return user.is_superuser or user_tenant_id(user) is not None


def scope_queryset(qs, user, tenant_field: str = "tenant"):
    """Filter ``qs`` to ``user``'s tenant via ``tenant_field`` (a lookup path); superusers unfiltered."""
    if user.is_superuser:
        return qs
    tenant_id = user_tenant_id(user)
    if tenant_id is None:
        return qs.none()
    return qs.filter(**{tenant_field: tenant_id})


def scope_fk_field(field, db_field, request):
    """Limit a foreign-key form field's choices to the user's tenant: Tenant itself, rows with a tenant, and
    users (only the tenant's own staff, through their membership)."""
    if field is not None and not request.user.is_superuser:
        model = db_field.remote_field.model
        tenant_id = user_tenant_id(request.user)
        if model is Tenant:
            field.queryset = field.queryset.filter(pk=tenant_id)
        elif model is get_user_model():
            field.queryset = field.queryset.filter(membership__tenant_id=tenant_id)
        elif any(f.name == "tenant" for f in model._meta.fields):
            field.queryset = field.queryset.filter(tenant_id=tenant_id)
    return field


class TenantScopedAdmin(admin.ModelAdmin):
    """ModelAdmin whose queryset, FK choices and new rows are limited to the user's tenant; users without a
    tenant (and not superusers) get no module on the index and no write permission."""

    tenant_field = "tenant"

    def get_queryset(self, request):
        return scope_queryset(super().get_queryset(request), request.user, self.tenant_field)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return scope_fk_field(super().formfield_for_foreignkey(db_field, request, **kwargs), db_field, request)

    def has_module_permission(self, request):
        return in_a_tenant(request.user) and super().has_module_permission(request)

    def has_add_permission(self, request):
        return in_a_tenant(request.user) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return in_a_tenant(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return in_a_tenant(request.user) and super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if not change and not request.user.is_superuser and hasattr(obj, "tenant_id") and not obj.tenant_id:
            obj.tenant_id = user_tenant_id(request.user)
        super().save_model(request, obj, form, change)

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if not request.user.is_superuser and self.tenant_field == "tenant":
            exclude.append("tenant")
        return exclude


class TenantScopedInline(admin.TabularInline):
    """Inline whose FK choices are limited to the user's tenant; read-only for users without a tenant."""

    extra = 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return scope_fk_field(super().formfield_for_foreignkey(db_field, request, **kwargs), db_field, request)

    def has_add_permission(self, request, obj):
        return in_a_tenant(request.user) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return in_a_tenant(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return in_a_tenant(request.user) and super().has_delete_permission(request, obj)


class SuperuserOnlyMixin:
    """ModelAdmin mixin: only superusers see the model at all, whatever permissions a staff user was given."""

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request, *args):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


def restrict_to_superusers(site: admin.AdminSite, models) -> None:
    """Re-register each of ``models`` already on ``site`` with its own admin class behind
    :class:`SuperuserOnlyMixin` (models not registered are skipped)."""
    for model in models:
        if not site.is_registered(model):
            continue
        admin_class = type(site.get_model_admin(model))
        site.unregister(model)
        site.register(model, type(f"SuperuserOnly{admin_class.__name__}", (SuperuserOnlyMixin, admin_class), {}))


class SuperuserEditsInline(TenantScopedInline):
    """A tenant-scoped inline that clinic staff may view but only superusers add to, change or delete from."""

    def has_add_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser
