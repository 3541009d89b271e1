"""``manage.py erase_customer <customer id> [--yes]``: erase a patient (see identity.privacy)."""

from django.core.management.base import BaseCommand, CommandError

from identity.models import Customer
from identity.privacy import ErasureRefused, customer_erase


class Command(BaseCommand):
    help = "Erase everything about one patient (GDPR Art. 17); aggregate rows keep their numbers, anonymised."

    def add_arguments(self, parser):
        parser.add_argument("customer_id")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args, customer_id, yes, **options):
        customer = Customer.objects.filter(pk=customer_id).first()
        if customer is None:
            raise CommandError("no such customer")
        if not yes and input(f"Erase customer {customer.pk}? This cannot be undone. [y/N] ").lower() != "y":
            raise CommandError("not confirmed")
        try:
            counts = customer_erase(customer=customer, actor="command:erase_customer")
        except ErasureRefused as exc:
            raise CommandError(f"refused: {exc}")
        self.stdout.write(f"erased {customer.pk}: {sum(counts.values())} rows changed")
