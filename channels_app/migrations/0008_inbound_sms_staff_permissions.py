"""Give the clinic role groups their InboundSms permissions (identity.roles.ROLE_PERMISSIONS now lists it)."""

from django.db import migrations


def sync_role_groups(apps, schema_editor):
    from identity.roles import role_groups_sync

    role_groups_sync(using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("channels_app", "0007_inbound_sms_intake"),
        ("identity", "0013_tenant_conversation_quiet_period"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
