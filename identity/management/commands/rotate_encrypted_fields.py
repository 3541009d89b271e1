"""``manage.py rotate_encrypted_fields``: re-encrypt every stored secret under the newest field-encryption key.

After putting a new key first in ``FIELD_ENCRYPTION_KEYS`` (old ones after it) and restarting every process,
run this once; then the old keys can be removed from the ring. Every model field that is an
:class:`identity.fields.EncryptedTextField` is covered, across all tenants (an operator's command). Rows are
rewritten in batches, each row with a single-row ``UPDATE``, so a concurrent edit is never lost for long and a
failure leaves every row readable (each stays under whichever key in the ring encrypted it).
"""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from identity.fields import EncryptedTextField


class Command(BaseCommand):
    help = "Re-encrypt EncryptedTextField values under the first key of FIELD_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        total = 0
        for model in apps.get_models():
            fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            if not fields:
                continue
            names = [f.attname for f in fields]
            for pk in model._base_manager.values_list("pk", flat=True).iterator():
                with transaction.atomic():
                    row = model._base_manager.select_for_update().filter(pk=pk).values(*names).first()
                    if row is None:
                        continue
                    changes = {n: v for n, v in row.items() if v}
                    if changes:
                        # read decrypts with any key of the ring; update() encrypts under the newest
                        model._base_manager.filter(pk=pk).update(**changes)
                        total += 1
            self.stdout.write(f"{model._meta.label}: {', '.join(names)}")
        self.stdout.write(f"{total} rows re-encrypted under the newest key")
