"""Forms a clinic admin uses for their staff's logins. They hold no privilege field at all: no
``is_superuser``, ``is_staff``, groups, permissions or tenant; a value posted for one of those is ignored."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserChangeForm, UserCreationForm

from identity.models import TenantMembership

USER_FIELDS = ("username", "first_name", "last_name", "email")


class StaffUserCreationForm(UserCreationForm):
    """A new staff login: username, names, email, password (twice) and the role in the admin's clinic."""

    role = forms.ChoiceField(
        label="Role",
        choices=TenantMembership.Role.choices,
        initial=TenantMembership.Role.STAFF,
        help_text="Clinic admins can also manage the clinic's staff logins and settings.",
    )

    class Meta(UserCreationForm.Meta):
        fields = USER_FIELDS


class StaffUserChangeForm(UserChangeForm):
    """Names, email, active flag and role of an existing staff login (the password has its own form)."""

    role = forms.ChoiceField(label="Role", choices=TenantMembership.Role.choices)

    class Meta(UserChangeForm.Meta):
        fields = (*USER_FIELDS, "is_active")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        membership = TenantMembership.objects.filter(user_id=self.instance.pk).first()
        if membership is not None and "role" in self.fields:
            self.fields["role"].initial = membership.role
