"""``manage.py seed_demo [--json]``: create (or leave as is) the demo tenant, its number and an admin login.

Demo logins with a published password: with ``DEBUG=0`` it refuses to run unless ``--force`` is given.
Idempotent: running it again changes nothing and prints the same values. Each app may add demo data in a
``<app>/demo.py`` module with ``seed(tenant) -> dict``; the dicts are merged into the ``--json`` output.
"""

import json
import os
import secrets
from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from identity.demo import demo_password
from identity.models import Tenant, TenantMembership, TenantPhoneNumber

DEMO_SLUG = "demo"
DEMO_NUMBER = "+15550100000"
DEMO_ACCOUNT_SID = "AC" + b"d3m0".hex().ljust(32, "0")
DEMO_ADMIN = "admin"


def seed_tenant() -> tuple[Tenant, str]:
    """Create the demo tenant, its number and the admin user if missing; return (tenant, admin password)."""
    password = demo_password()
    with transaction.atomic():
        tenant, created = Tenant.objects.get_or_create(
            slug=DEMO_SLUG,
            defaults={
                "name": "Sunrise Family Clinic",
                "short_name": "Sunrise Clinic",
                "timezone": "America/New_York",
                "country": "US",
                "twilio_account_sid": DEMO_ACCOUNT_SID,
                "twilio_auth_token": os.environ.get("DEMO_TWILIO_AUTH_TOKEN") or secrets.token_hex(16),
                "allowed_widget_origins": [settings.PUBLIC_BASE_URL],
            },
        )
        TenantPhoneNumber.objects.get_or_create(number=DEMO_NUMBER, defaults={"tenant": tenant, "label": "Main line"})
        user_model = get_user_model()
        user = user_model.objects.filter(username=DEMO_ADMIN).first()
        if user is None:
            user = user_model.objects.create_superuser(DEMO_ADMIN, "admin@clinic.example", password)
        TenantMembership.objects.get_or_create(user=user, defaults={"tenant": tenant, "role": "admin"})
    return tenant, password


class Command(BaseCommand):
    help = "Create the demo tenant (idempotent). --json prints its id, number, Twilio token, widget key, login."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")
        parser.add_argument(
            "--force", action="store_true", help="run even with DEBUG=0 (creates logins with the demo password)"
        )

    def handle(self, *args, **options):
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "seed_demo creates a superuser with a published password: it runs only with DEBUG=1 "
                "(or pass --force, e.g. on a throwaway staging host)"
            )
        tenant, password = seed_tenant()
        out = {
            "tenant_id": str(tenant.id),
            "tenant_slug": tenant.slug,
            "phone_number": DEMO_NUMBER,
            "twilio_account_sid": tenant.twilio_account_sid,
            "twilio_auth_token": tenant.twilio_auth_token,
            "widget_key": tenant.widget_public_key,
            "admin": {"url": settings.PUBLIC_BASE_URL + "/admin/", "username": DEMO_ADMIN, "password": password},
        }
        for config in apps.get_app_configs():
            try:
                module = import_module(f"{config.name}.demo")
            except ModuleNotFoundError as exc:
                if exc.name != f"{config.name}.demo":
                    raise
                continue
            out.update(module.seed(tenant) or {})
        if options["json"]:
            self.stdout.write(json.dumps(out, indent=2))
        else:
            self.stdout.write(
                f"demo tenant {tenant.name} ({tenant.id}) on {DEMO_NUMBER}; "
                f"admin {out['admin']['url']} {DEMO_ADMIN} / {password}"
            )
