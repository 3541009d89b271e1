"""Tenant scoping for Django admin: staff see and pick only their own tenant's rows.

Every ``ModelAdmin`` of a tenant-owned model inherits :class:`TenantScopedAdmin`. Superusers see everything;
a staff user with a :class:`~identity.models.TenantMembership` sees rows of that tenant only (list, change
form, autocomplete, actions, foreign-key choices); a staff user without one sees nothing.
"""

from __future__ import annotations

from django.contrib import admin

from identity.models import Tenant, TenantMembership


def user_tenant_id(user):
    """The tenant id of a staff user, or None (superusers and users without a membership)."""
    if not getattr(user, "is_authenticated", False):
        return None
    cached = getattr(user, "_cs_tenant_id", Ellipsis)
    if cached is Ellipsis:
        cached = TenantMembership.objects.filter(user=user).values_list("tenant_id", flat=True).first()
        user._cs_tenant_id = cached
    return cached


def scope_queryset(qs, user, tenant_field: str = "tenant"):
    """Filter ``qs`` to ``user``'s tenant via ``tenant_field`` (a lookup path); superusers unfiltered."""
    if user.is_superuser:
        return qs
    tenant_id = user_tenant_id(user)
    if tenant_id is None:
        return qs.none()
    return qs.filter(**{tenant_field: tenant_id})


def scope_fk_field(field, db_field, request):
    """Limit a foreign-key form field's choices to the user's tenant (Tenant itself, or rows with a tenant)."""
    if field is not None and not request.user.is_superuser:
        model = db_field.remote_field.model
        if model is Tenant:
            field.queryset = field.queryset.filter(pk=user_tenant_id(request.user))
        elif any(f.name == "tenant" for f in model._meta.fields):
            field.queryset = field.queryset.filter(tenant_id=user_tenant_id(request.user))
    return field


class TenantScopedAdmin(admin.ModelAdmin):
    """ModelAdmin whose queryset, FK choices and new rows are limited to the user's tenant."""

    tenant_field = "tenant"

    def get_queryset(self, request):
        return scope_queryset(super().get_queryset(request), request.user, self.tenant_field)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return scope_fk_field(super().formfield_for_foreignkey(db_field, request, **kwargs), db_field, request)

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
    """Inline whose FK choices are limited to the user's tenant."""

    extra = 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return scope_fk_field(super().formfield_for_foreignkey(db_field, request, **kwargs), db_field, request)
