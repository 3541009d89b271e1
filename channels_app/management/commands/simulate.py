"""``manage.py simulate <channel> …``: send a real, signed request to a running server.

Each channel is a module in ``channels_app.simulate`` with ``add_arguments(parser)`` and
``run(command, tenant, to, server, options)``.
"""

import os
from importlib import import_module

from django.core.management.base import BaseCommand, CommandError

from identity.models import Tenant

CHANNELS = ["sms", "call", "emergency", "chat", "email"]


class Command(BaseCommand):
    help = "Send a signed channel request (e.g. an inbound SMS) to a running callsphere server."

    def add_arguments(self, parser):
        parser.add_argument(
            "--server",
            default=f"http://127.0.0.1:{os.environ.get('WEB_PORT') or '8000'}",
            help="where the server listens (default: 127.0.0.1 on WEB_PORT, as make run starts it; else 8000)",
        )
        parser.add_argument("--tenant", default="demo", help="tenant slug")
        sub = parser.add_subparsers(dest="channel", required=True)
        for name in CHANNELS:
            module = import_module(f"channels_app.simulate.{name}")
            module.add_arguments(sub.add_parser(name, help=module.__doc__))

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant {options['tenant']!r}; run `python manage.py seed_demo` first")
        number = tenant.phone_numbers.order_by("id").values_list("number", flat=True).first()
        if not number:
            raise CommandError(f"tenant {tenant.slug} has no phone number")
        module = import_module(f"channels_app.simulate.{options['channel']}")
        module.run(self, tenant, number, options["server"], options)
