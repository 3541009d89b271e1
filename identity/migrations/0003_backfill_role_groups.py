"""Put every existing clinic login into the group of its membership role ("Clinic staff" / "Clinic admin").

0002 created the groups but left existing users out: on an install that predates the roles, clinic admins would
see their staff read-only (a user with permissions outside the role groups is not theirs to manage) and staff
would keep only their hand-given permissions. Direct permissions are left as they are: removing access is a
decision for the operator, not a migration.
"""

from django.db import migrations

ROLE_GROUP_NAMES = {"staff": "Clinic staff", "admin": "Clinic admin"}  # identity.roles.ROLE_GROUP_NAMES, frozen


def backfill(apps, schema_editor):
    db = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    Membership = apps.get_model("identity", "TenantMembership")
    groups = {role: Group.objects.using(db).get_or_create(name=name)[0] for role, name in ROLE_GROUP_NAMES.items()}
    for membership in Membership.objects.using(db).select_related("user").filter(user__is_superuser=False):
        group = groups.get(membership.role)
        if group is not None:
            membership.user.groups.add(group)


class Migration(migrations.Migration):
    dependencies = [("identity", "0002_clinic_role_groups")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
