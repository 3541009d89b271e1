"""Give the "Clinic admin" group the CRM permissions (identity.roles.ROLE_PERMISSIONS now lists the crm app)."""

from django.db import migrations


def sync_role_groups(apps, schema_editor):
    from identity.roles import role_groups_sync

    role_groups_sync(using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0001_crm_connections_record_map_outbox"),
        ("identity", "0005_customer_legal_hold_erased_at"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
