"""A clinic's staff logins: who a clinic admin may manage, and the writes (add, change role, (de)activate).

Rules (enforced by :func:`staff_manageable` and the admin in ``identity.admin_users``):

- a clinic admin (membership role ``admin``) manages users whose membership is in *their* tenant, never a
  superuser, and never a user holding permissions beyond the two role groups (a direct permission or another
  group: resetting that user's password would hand the admin those permissions);
- new users are always ``is_staff=True, is_superuser=False``, get a membership of the admin's tenant and the
  group of their role, all in one transaction; the tenant of an existing membership never changes here;
- deactivation (``is_active=False``) is the way out; deleting users is for superusers.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import QuerySet

from identity.admin_scoping import user_is_clinic_admin, user_tenant_id
from identity.models import Tenant, TenantMembership
from identity.roles import ROLE_GROUP_NAMES, role_group

User = get_user_model()
STAFF_EDITABLE_FIELDS = ("username", "first_name", "last_name", "email", "is_active")


def staff_visible_to(actor) -> QuerySet:
    """Users ``actor`` may see in the user admin: everyone for superusers; for a clinic admin, the non-superuser
    members of their tenant; nobody for anyone else."""
    if actor.is_superuser:
        return User.objects.all()
    if not user_is_clinic_admin(actor):
        return User.objects.none()
    return User.objects.filter(membership__tenant_id=user_tenant_id(actor), is_superuser=False)


def staff_manageable(actor) -> QuerySet:
    """The subset of :func:`staff_visible_to` that ``actor`` may change: for a clinic admin, only users with
    no direct permission and no group other than the role groups."""
    qs = staff_visible_to(actor)
    if actor.is_superuser:
        return qs
    other_groups = Group.objects.exclude(name__in=ROLE_GROUP_NAMES.values())
    return qs.exclude(user_permissions__isnull=False).exclude(groups__in=other_groups)


def staff_can_manage(actor, user) -> bool:
    """True when ``actor`` may change ``user`` (name, email, password, role, active flag)."""
    return user.pk is not None and staff_manageable(actor).filter(pk=user.pk).exists()


def _role_group_set(*, user, role: str) -> None:
    other_roles = [name for r, name in ROLE_GROUP_NAMES.items() if r != role]
    user.groups.remove(*Group.objects.filter(name__in=other_roles))
    user.groups.add(role_group(role))


def staff_member_create(*, tenant: Tenant, user, role: str) -> TenantMembership:
    """Save the unsaved ``user`` (username, names, email and password already set by the caller's form) as an
    active staff login of ``tenant`` with ``role`` (``"staff"`` or ``"admin"``) and that role's group.

    One transaction: the user, the membership and the group link are written together or not at all.
    Raises ``ValueError`` for an unknown role or a user that is already saved.
    """
    if role not in ROLE_GROUP_NAMES:
        raise ValueError(f"unknown role {role!r}")
    if user.pk is not None:
        raise ValueError("staff_member_create takes a new, unsaved user")
    with transaction.atomic():
        user.is_staff = True
        user.is_superuser = False
        user.is_active = True
        user.save()
        membership = TenantMembership.objects.create(user=user, tenant=tenant, role=role)
        _role_group_set(user=user, role=role)
    return membership


def staff_member_update(*, user, fields: list[str], role: str | None = None) -> None:
    """Save the listed plain ``fields`` of ``user`` (any of username, first_name, last_name, email,
    is_active) and, when ``role`` is given, set the membership role and swap the role group.

    One transaction. The membership's tenant is never touched. Raises ``ValueError`` for other fields or an
    unknown role; ``TenantMembership.DoesNotExist`` when a role is given for a user without a membership.
    """
    if set(fields) - set(STAFF_EDITABLE_FIELDS):
        raise ValueError(f"not editable here: {sorted(set(fields) - set(STAFF_EDITABLE_FIELDS))}")
    if role is not None and role not in ROLE_GROUP_NAMES:
        raise ValueError(f"unknown role {role!r}")
    with transaction.atomic():
        if fields:
            user.save(update_fields=fields)
        if role is not None:
            if not TenantMembership.objects.filter(user=user).update(role=role):
                raise TenantMembership.DoesNotExist("user has no tenant membership")
            _role_group_set(user=user, role=role)


def staff_active_set(*, user, active: bool) -> bool:
    """Set ``user.is_active``; return True when it changed. An inactive user can no longer log in, and their
    open sessions stop working at their next request (``ModelBackend`` refuses inactive users)."""
    if user.is_active == active:
        return False
    user.is_active = active
    user.save(update_fields=["is_active"])
    return True
