"""Unlocking a staff login: clearing a django-axes lockout and resetting a lost TOTP authenticator.

Called from the user admin's actions (``identity.admin_users``) for the users the actor may manage
(:func:`identity.staff.staff_manageable`: a clinic admin's own tenant's staff; superusers anyone). Each call writes
one audit event (``staff.lockout_reset`` / ``staff.otp_reset``, the target user as the object, the actor from
the request, a row count and nothing else); the admin also writes Django's ``LogEntry``.
"""

from __future__ import annotations

from axes.utils import reset as axes_reset
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from identity.admin_scoping import user_tenant_id
from identity.audit import audit_record


def staff_lockout_reset(*, user, request=None) -> int:
    """End ``user``'s sign-in lockout: delete django-axes' failed attempts recorded for their username (from
    every address). Returns the number of attempt rows removed (0: nothing was recorded). Audited either way."""
    removed = axes_reset(username=user.get_username())
    audit_record(
        request=request,
        action="staff.lockout_reset",
        tenant_id=user_tenant_id(user),
        obj=user,
        details={"attempt_rows": removed},
    )
    return removed


def staff_otp_reset(*, user, request=None) -> int:
    """Delete ``user``'s TOTP devices (a lost or replaced phone). Their sessions verified with the old device are
    no longer verified (django-otp finds no device), and their next admin page asks them to enrol a new
    authenticator (QR code) — after signing in with their password. Returns the devices removed. Audited."""
    with transaction.atomic():
        removed = TOTPDevice.objects.filter(user=user).delete()[0]
        audit_record(
            request=request,
            action="staff.otp_reset",
            tenant_id=user_tenant_id(user),
            obj=user,
            details={"devices": removed},
        )
    return removed
