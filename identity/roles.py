"""The clinic roles as Django groups: "Clinic staff" (front desk), "Clinic admin" and "Clinic scheduling".

"Clinic scheduling" is least privilege for people who only run the calendar: they see patients' names and
numbers and manage appointments, and never read what patients said (no call_logs, conversations, emails, inbox,
Customer 360 timeline, triage or incidents; staff sessions of this role reach only ``appointments:read`` in the
API). :func:`user_reads_transcripts` is the one check for the pages that are not model permissions.

A :class:`~identity.models.TenantMembership` role maps to exactly one group; the group carries the model
permissions the admin checks. Tenant scoping is separate (``identity.admin_scoping``): a permission here lets
a member act on *their tenant's* rows only. Managing staff users is not a model permission: it is the
``admin`` role itself (``identity.admin_users``), so neither group holds any ``auth`` permission and no
clinic user can edit groups or permissions.

Changing ``ROLE_PERMISSIONS``: add a data migration that calls :func:`role_groups_sync` (like
``identity/migrations/0002_clinic_role_groups.py``) so existing databases pick the change up.
"""

from __future__ import annotations

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Q

from identity.admin_scoping import user_role
from identity.models import TenantMembership

Role = TenantMembership.Role

ROLE_GROUP_NAMES: dict[str, str] = {
    Role.STAFF: "Clinic staff",
    Role.ADMIN: "Clinic admin",
    Role.SCHEDULING: "Clinic scheduling",
}
#: Roles whose members never read transcripts, message bodies or notes (only names, numbers and the calendar).
NO_TRANSCRIPT_ROLES = frozenset({Role.SCHEDULING})

_V, _VC, _VAC, _ALL = ("view",), ("view", "change"), ("view", "add", "change"), ("view", "add", "change", "delete")

# app label → model name → actions. Front desk: read everything of the clinic, work the queues.
_STAFF: dict[str, dict[str, tuple[str, ...]]] = {
    "identity": {
        "tenant": _V,
        "tenantphonenumber": _V,
        "customer": _VC,
        "customeridentifier": _VC,
        "identityconflict": _VC,
        "customermerge": _V,
    },
    "conversations": {
        "conversation": _VC,
        "interaction": _V,
        "channelmessage": _V,
        "sessionstate": _V,
        "appointment": _VC,
        "callbackrequest": _VC,
        "staffnotification": _VC,
        "dashboard": _V,
        "agentsettings": _V,
        "cannedresponse": _V,
        "remindersettings": _V,
        "appointmentreminder": _V,
        "satisfactionsurvey": _V,
    },
    "channels_app": {
        "inboundemail": _V,
        "emailthread": _V,
        "emailattachment": _V,
        "outboundemail": _V,
        "inboundsms": _VC,
    },
    "escalation": {
        "incident": _VC,
        "notificationattempt": _V,
        "responder": _V,
        "team": _V,
        "schedule": _V,
        "schedulemember": _V,
        "scheduleoverride": _V,
        "escalationpolicy": _V,
        "escalationstep": _V,
        "escalationsettings": _V,
    },
}

# Clinic admin: the staff set, plus the clinic's own configuration (settings, numbers, keys, hooks, on-call).
_ADMIN_EXTRA: dict[str, dict[str, tuple[str, ...]]] = {
    "identity": {"tenant": _VC, "tenantphonenumber": _ALL},
    "conversations": {
        "agentsettings": _VAC,
        "apikey": _VAC,
        "webhookendpoint": _ALL,
        "webhookdelivery": _VC,
        "cannedresponse": _ALL,
        "remindersettings": _VAC,
    },
    "channels_app": {"emailmailbox": _ALL},
    "crm": {"crmconnection": ("change", "delete", "view"), "crmdelivery": _VC},
    "escalation": {
        "responder": _ALL,
        "team": _ALL,
        "schedule": _ALL,
        "schedulemember": _ALL,
        "scheduleoverride": _ALL,
        "escalationpolicy": _ALL,
        "escalationstep": _ALL,
        "escalationsettings": _VAC,
    },
}


# Clinic scheduling: the calendar and who is on it; nothing patients said.
_SCHEDULING: dict[str, dict[str, tuple[str, ...]]] = {
    "identity": {"tenant": _V, "customer": _V, "customeridentifier": _V},
    "conversations": {"appointment": _VC, "agentsettings": _V},
}


def _merge(*specs: dict) -> dict[str, dict[str, tuple[str, ...]]]:
    out: dict[str, dict[str, set[str]]] = {}
    for spec in specs:
        for app_label, models in spec.items():
            for model, actions in models.items():
                out.setdefault(app_label, {}).setdefault(model, set()).update(actions)
    return {a: {m: tuple(sorted(acts)) for m, acts in models.items()} for a, models in out.items()}


ROLE_PERMISSIONS: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    Role.STAFF: _merge(_STAFF),
    Role.ADMIN: _merge(_STAFF, _ADMIN_EXTRA),
    Role.SCHEDULING: _merge(_SCHEDULING),
}


def user_reads_transcripts(user) -> bool:
    """True unless ``user``'s clinic role is one that must not read transcripts (``NO_TRANSCRIPT_ROLES``).

    Superusers: True. Anonymous users: False. Model permissions still apply on top of this.
    """
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    role = user_role(user)
    return role not in NO_TRANSCRIPT_ROLES


def role_permission_names(role: str) -> set[str]:
    """The ``"app_label.codename"`` permissions of ``role`` (``"staff"`` / ``"admin"``). KeyError otherwise."""
    return {
        f"{app_label}.{action}_{model}"
        for app_label, models in ROLE_PERMISSIONS[role].items()
        for model, actions in models.items()
        for action in actions
    }


def _permissions(role: str, using: str):
    query = Q(pk__in=[])
    for name in role_permission_names(role):
        app_label, codename = name.split(".", 1)
        query |= Q(content_type__app_label=app_label, codename=codename)
    return Permission.objects.using(using).filter(query)


def role_groups_sync(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, Group]:
    """Create the role groups if missing and set each one's permissions to exactly ``ROLE_PERMISSIONS``.

    Idempotent. Creates missing content types and permissions first (as ``migrate`` does after its last
    migration), so it also works inside a migration on a fresh database. Permissions of models that do not
    exist are skipped. Returns ``{role: Group}``.
    """
    for app_label in {a for spec in ROLE_PERMISSIONS.values() for a in spec}:
        create_permissions(global_apps.get_app_config(app_label), verbosity=0, using=using, apps=global_apps)
    groups = {}
    with transaction.atomic(using=using):
        for role, name in ROLE_GROUP_NAMES.items():
            group, _ = Group.objects.using(using).get_or_create(name=name)
            group.permissions.set(_permissions(role, using))
            groups[role] = group
    return groups


def role_group(role: str) -> Group:
    """The group of ``role``, created with its permissions (via :func:`role_groups_sync`) if it is missing
    (a flushed test database, a database migrated before the groups existed). KeyError for unknown roles."""
    group = Group.objects.filter(name=ROLE_GROUP_NAMES[role]).first()
    return group if group is not None else role_groups_sync()[role]
