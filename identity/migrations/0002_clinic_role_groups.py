"""Create the "Clinic staff" and "Clinic admin" groups with their permissions (identity/roles.py).

Deliberately calls the live ``role_groups_sync`` rather than a frozen copy: the groups should hold the
permissions of today's models, which only the live app registry knows (it also creates any content type and
permission rows ``migrate`` would only add after its last migration). When the role permissions change, add
another migration like this one.
"""

from django.db import migrations

GROUP_NAMES = ["Clinic staff", "Clinic admin"]


def create_role_groups(apps, schema_editor):
    from identity.roles import role_groups_sync

    role_groups_sync(using=schema_editor.connection.alias)


def remove_role_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name__in=GROUP_NAMES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
