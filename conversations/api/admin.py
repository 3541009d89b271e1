"""Admin for API keys: create (the key is shown once), list, revoke. Tenant-scoped."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from conversations.api.models import ApiKey, ApiScope
from conversations.api.services import api_key_create, api_key_revoke
from identity.admin_scoping import TenantScopedAdmin, user_tenant_id
from identity.models import Tenant


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple, initial=[s.value for s in ApiScope]
    )

    class Meta:
        model = ApiKey
        fields = ["tenant", "name", "scopes", "expires_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin):
    form = ApiKeyForm
    list_display = ["name", "__str__", "tenant", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "tenant", "scopes"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name", "expires_at"])
            return
        tenant = form.cleaned_data.get("tenant") or Tenant.objects.get(pk=user_tenant_id(request.user))
        key, raw = api_key_create(
            tenant=tenant, name=obj.name, scopes=form.cleaned_data["scopes"], created_by=request.user
        )
        if obj.expires_at:
            ApiKey.objects.filter(pk=key.pk).update(expires_at=obj.expires_at)
        obj.pk = key.pk
        self.message_user(request, f"API key created. Copy it now, it is not shown again: {raw}", messages.WARNING)

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        n = sum(api_key_revoke(api_key=k) for k in queryset)
        self.message_user(request, f"Revoked {n} key(s).")
