"""``seed_demo`` hook: a clinic admin and a front-desk login for the demo tenant (idempotent).

``seed_demo`` itself creates the superuser ``admin``; these two show the tenant-scoped console: the clinic
admin manages the clinic's staff in /admin/auth/user/, the front desk works the queues. Both use the demo
password (``DEMO_ADMIN_PASSWORD``, default ``callsphere-demo``). Printed by ``seed_demo --json`` as
``staff_logins``.
"""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model

from identity.models import TenantMembership
from identity.staff import staff_member_create

DEMO_STAFF = [
    ("clinic-admin", "Casey", "Admin", TenantMembership.Role.ADMIN),
    ("front-desk", "Frankie", "Desk", TenantMembership.Role.STAFF),
]


def demo_password() -> str:
    """The demo logins' password: ``DEMO_ADMIN_PASSWORD``, else the published ``callsphere-demo`` (``seed_demo``
    runs with DEBUG=0 only when forced)."""
    return os.environ.get("DEMO_ADMIN_PASSWORD") or "callsphere-demo"


def seed(tenant) -> dict:
    """Create the demo tenant's clinic admin and front-desk users if missing; return their logins."""
    password = demo_password()
    user_model = get_user_model()
    logins = []
    for username, first, last, role in DEMO_STAFF:
        if not user_model.objects.filter(username=username).exists():
            user = user_model(username=username, first_name=first, last_name=last, email=f"{username}@clinic.example")
            user.set_password(password)
            staff_member_create(tenant=tenant, user=user, role=role)
        logins.append({"username": username, "password": password, "role": str(role)})
    return {"staff_logins": logins}
