"""Clinic admins manage their own clinic's staff logins in /admin/auth/user/ and nothing else: no other tenant's
users, no superusers, no privilege fields, no deleting; plain staff and staff without a tenant manage nobody."""

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Group, Permission

from escalation.models import Responder
from identity.models import TenantMembership
from identity.roles import ROLE_GROUP_NAMES, role_group, role_permission_names
from identity.staff import staff_member_create
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

USERS = "/admin/auth/user/"


def member(django_user_model, tenant, username, role="staff"):
    user = django_user_model(username=username, email=f"{username}@clinic.example")
    user.set_password("pw")
    staff_member_create(tenant=tenant, user=user, role=role)
    return user


@pytest.fixture
def people(tenant, other_tenant, django_user_model):
    """Clinic A: an admin and a front desk; clinic B: a front desk; a superuser who is also a member of A."""
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    TenantMembership.objects.create(user=root, tenant=tenant, role="admin")
    return {
        "boss": member(django_user_model, tenant, "a-boss", role="admin"),
        "desk": member(django_user_model, tenant, "a-desk"),
        "other": member(django_user_model, other_tenant, "b-desk"),
        "root": root,
        "loner": django_user_model.objects.create_user("loner", password="pw", is_staff=True),
    }


@pytest.fixture
def as_boss(people, client):
    client.force_login(people["boss"])
    return client


def change_data(user, **overrides):
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "role": user.membership.role,
        "is_active": "on",
    }
    data.update(overrides)
    return data


def listed(client, **params):
    response = client.get(USERS, params)
    assert response.status_code == 200
    return {u.username for u in response.context["cl"].result_list}


def test_clinic_admin_lists_only_their_own_tenants_non_superusers(as_boss):
    assert listed(as_boss) == {"a-boss", "a-desk"}
    assert listed(as_boss, q="b-desk") == set() and listed(as_boss, q="root") == set()


def test_other_tenants_users_and_superusers_are_unreachable(people, as_boss):
    for target in (people["other"], people["root"], people["loner"]):
        base = f"{USERS}{target.pk}/"
        for url in (f"{base}change/", f"{base}history/"):
            response = as_boss.get(url)
            assert response.status_code == 302 and response["Location"] == "/admin/", url  # "doesn't exist"
        assert as_boss.get(f"{base}password/").status_code == 404
        assert as_boss.get(f"{base}delete/").status_code == 403
        as_boss.post(f"{base}change/", {"username": "hijacked", "is_superuser": "on", "is_active": ""})
        as_boss.post(
            f"{base}password/", {"password1": "taken-over", "password2": "taken-over", "usable_password": "true"}
        )
        target.refresh_from_db()
        assert target.username != "hijacked" and target.is_active and target.check_password("pw")


def test_clinic_admin_adds_staff_into_their_tenant_and_posted_privileges_are_ignored(people, as_boss, other_tenant):
    page = as_boss.get(f"{USERS}add/")
    assert page.status_code == 200
    body = page.content.decode()
    for name in ("is_superuser", "is_staff", "groups", "user_permissions", "tenant", "usable_password"):
        assert f'name="{name}"' not in body, name
    foreign_group = Group.objects.create(name="Everything")
    foreign_group.permissions.set(Permission.objects.all())
    response = as_boss.post(
        f"{USERS}add/",
        {
            "username": "a-nurse",
            "password1": "s3cret-pass",
            "password2": "s3cret-pass",
            "first_name": "Nina",
            "email": "nina@clinic.example",
            "role": "staff",
            # none of these exist in the form: they must be ignored
            "is_superuser": "on",
            "groups": [foreign_group.pk],
            "user_permissions": [Permission.objects.first().pk],
            "tenant": str(other_tenant.pk),
            "membership-tenant": str(other_tenant.pk),
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    nurse = type(people["boss"]).objects.get(username="a-nurse")
    assert nurse.is_staff and nurse.is_active and not nurse.is_superuser and nurse.check_password("s3cret-pass")
    assert nurse.membership.tenant_id == people["boss"].membership.tenant_id and nurse.membership.role == "staff"
    assert set(nurse.groups.values_list("name", flat=True)) == {ROLE_GROUP_NAMES["staff"]}
    assert not nurse.user_permissions.exists()
    assert LogEntry.objects.filter(user=people["boss"], object_id=str(nurse.pk), action_flag=ADDITION).exists()
    assert "a-nurse" in listed(as_boss)


def test_clinic_admin_can_add_another_clinic_admin(people, as_boss):
    as_boss.post(
        f"{USERS}add/", {"username": "a-boss2", "password1": "pw-pw-pw-1", "password2": "pw-pw-pw-1", "role": "admin"}
    )
    boss2 = type(people["boss"]).objects.get(username="a-boss2")
    assert boss2.membership.role == "admin" and not boss2.is_superuser
    assert set(boss2.groups.values_list("name", flat=True)) == {ROLE_GROUP_NAMES["admin"]}


def test_change_form_has_no_privilege_fields_and_ignores_them(people, as_boss, other_tenant):
    desk = people["desk"]
    url = f"{USERS}{desk.pk}/change/"
    body = as_boss.get(url).content.decode()
    for name in ("is_superuser", "is_staff", "groups", "user_permissions", "tenant"):
        assert f'name="{name}"' not in body, name
    assert 'name="role"' in body and 'name="is_active"' in body
    response = as_boss.post(
        url,
        change_data(
            desk,
            email="desk@new.example",
            role="admin",
            is_superuser="on",
            is_staff="",
            groups=[Group.objects.create(name="x").pk],
            user_permissions=[Permission.objects.first().pk],
            tenant=str(other_tenant.pk),
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    desk.refresh_from_db()
    assert desk.email == "desk@new.example" and desk.is_staff and not desk.is_superuser
    assert desk.membership.role == "admin" and desk.membership.tenant_id == people["boss"].membership.tenant_id
    assert set(desk.groups.values_list("name", flat=True)) == {ROLE_GROUP_NAMES["admin"]}
    assert not desk.user_permissions.exists()
    entry = LogEntry.objects.get(user=people["boss"], object_id=str(desk.pk), action_flag=CHANGE)
    assert "Role" in entry.get_change_message() and "Email" in entry.get_change_message()


def test_clinic_admin_cannot_change_own_role_or_active_flag(people, as_boss):
    boss = people["boss"]
    url = f"{USERS}{boss.pk}/change/"
    body = as_boss.get(url).content.decode()
    assert 'name="role"' not in body and 'name="is_active"' not in body and 'name="is_superuser"' not in body
    response = as_boss.post(url, change_data(boss, first_name="Boss", role="staff", is_active="", is_superuser="on"))
    assert response.status_code == 302
    boss.refresh_from_db()
    assert boss.first_name == "Boss" and boss.is_active and not boss.is_superuser
    assert boss.membership.role == "admin"


def test_deactivate_action_touches_only_own_staff_and_never_self(people, as_boss, client):
    selected = [people["desk"].pk, people["other"].pk, people["boss"].pk, people["root"].pk]
    response = as_boss.post(USERS, {"action": "deactivate_users", "_selected_action": selected})
    assert response.status_code == 302
    for key, active in [("desk", False), ("other", True), ("boss", True), ("root", True)]:
        people[key].refresh_from_db()
        assert people[key].is_active is active, key
    assert LogEntry.objects.filter(user=people["boss"], object_id=str(people["desk"].pk), action_flag=CHANGE).exists()
    client.logout()
    response = client.post("/admin/login/", {"username": "a-desk", "password": "pw"})
    assert response.status_code == 200 and "_auth_user_id" not in client.session  # the form again, not signed in


def test_deactivate_with_the_checkbox_and_deleting_is_superuser_only(people, as_boss):
    desk = people["desk"]
    as_boss.post(f"{USERS}{desk.pk}/change/", change_data(desk, is_active=""))
    desk.refresh_from_db()
    assert not desk.is_active
    assert as_boss.get(f"{USERS}{desk.pk}/delete/").status_code == 403
    assert as_boss.post(f"{USERS}{desk.pk}/delete/", {"post": "yes"}).status_code == 403
    choices = dict(as_boss.get(USERS).context["action_form"].fields["action"].choices)
    assert "delete_selected" not in choices and "deactivate_users" in choices
    as_boss.post(USERS, {"action": "delete_selected", "_selected_action": [desk.pk], "post": "yes"})
    assert type(desk).objects.filter(pk=desk.pk).exists()


def test_password_reset_uses_the_admin_form_for_own_staff(people, as_boss, client):
    desk = people["desk"]
    page = as_boss.get(f"{USERS}{desk.pk}/password/")
    assert page.status_code == 200 and 'name="password1"' in page.content.decode()
    response = as_boss.post(
        f"{USERS}{desk.pk}/password/",
        {"password1": "fresh-pass-1", "password2": "fresh-pass-1", "usable_password": "true"},
    )
    assert response.status_code == 302
    desk.refresh_from_db()
    assert desk.check_password("fresh-pass-1")
    assert LogEntry.objects.filter(user=people["boss"], object_id=str(desk.pk), action_flag=CHANGE).exists()


def test_users_with_extra_permissions_are_read_only_for_clinic_admins(people, as_boss, tenant, django_user_model):
    """Resetting such a user's password would hand the clinic admin permissions their role does not have."""
    special = member(django_user_model, tenant, "a-special")
    special.user_permissions.add(Permission.objects.get(codename="delete_customer"))
    grouped = member(django_user_model, tenant, "a-grouped")
    grouped.groups.add(Group.objects.create(name="Billing export"))
    for user in (special, grouped):
        assert user.username in listed(as_boss)
        assert as_boss.get(f"{USERS}{user.pk}/change/").status_code == 200  # view only
        assert as_boss.post(f"{USERS}{user.pk}/change/", change_data(user, is_active="")).status_code == 403
        assert as_boss.get(f"{USERS}{user.pk}/password/").status_code == 403
        as_boss.post(USERS, {"action": "deactivate_users", "_selected_action": [user.pk]})
        user.refresh_from_db()
        assert user.is_active


@pytest.mark.parametrize("who", ["desk", "loner"])
def test_plain_staff_and_staff_without_tenant_cannot_manage_users(people, client, who):
    user = people[who]
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="auth"))  # even with auth perms
    client.force_login(user)
    for url in (USERS, f"{USERS}add/", f"{USERS}{user.pk}/change/", f"{USERS}{people['desk'].pk}/password/"):
        assert client.get(url).status_code == 403, url
    response = client.post(
        f"{USERS}add/",
        {"username": "sneaky", "password1": "pw-pw-pw-1", "password2": "pw-pw-pw-1", "is_superuser": "on"},
    )
    assert response.status_code == 403 and not type(user).objects.filter(username="sneaky").exists()
    app_labels = {app["app_label"] for app in client.get("/admin/").context["app_list"]}
    assert "auth" not in app_labels


def test_staff_without_tenant_sees_nothing_and_writes_nothing(people, client, tenant):
    """Even holding every permission: no tenant-scoped app on the index, whatever is left shows no rows."""
    CustomerFactory(tenant=tenant)
    loner = people["loner"]
    loner.user_permissions.set(Permission.objects.all())
    client.force_login(loner)
    app_list = client.get("/admin/").context["app_list"]
    assert not {"auth", "identity", "escalation", "channels_app", "django_celery_beat"} & {
        app["app_label"] for app in app_list
    }
    for model in [m for app in app_list for m in app["models"]]:
        response = client.get(model["admin_url"])
        assert response.status_code == 404 or response.context["cl"].result_count == 0, model["admin_url"]
    assert client.get("/admin/identity/customer/").context["cl"].result_count == 0
    assert client.get("/admin/identity/customer/add/").status_code == 403


def test_groups_and_celery_beat_are_superuser_only(people, client):
    boss = people["boss"]
    boss.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["auth", "django_celery_beat"]))
    client.force_login(boss)
    for url in (
        "/admin/auth/group/",
        f"/admin/auth/group/{role_group('staff').pk}/change/",
        "/admin/django_celery_beat/periodictask/",
        "/admin/django_celery_beat/crontabschedule/add/",
    ):
        assert client.get(url).status_code == 403, url
    app_labels = {app["app_label"] for app in client.get("/admin/").context["app_list"]}
    assert "django_celery_beat" not in app_labels
    client.force_login(people["root"])
    assert client.get("/admin/auth/group/").status_code == 200
    assert client.get("/admin/django_celery_beat/periodictask/").status_code == 200


def test_superusers_keep_djangos_user_admin(people, client):
    client.force_login(people["root"])
    assert listed(client) == {"a-boss", "a-desk", "b-desk", "root", "loner"}
    body = client.get(f"{USERS}{people['other'].pk}/change/").content.decode()
    assert 'name="is_superuser"' in body and 'name="groups"' in body and 'name="user_permissions"' in body
    assert client.post(f"{USERS}{people['other'].pk}/delete/", {"post": "yes"}).status_code == 302
    assert not type(people["root"]).objects.filter(username="b-desk").exists()


def test_clinic_admin_index_shows_users_and_user_choices_elsewhere_are_scoped(people, as_boss):
    app_labels = {app["app_label"] for app in as_boss.get("/admin/").context["app_list"]}
    assert "auth" in app_labels
    field = as_boss.get("/admin/escalation/responder/add/").context["adminform"].form.fields["user"]
    assert {u.username for u in field.queryset} == {"a-boss", "a-desk", "root"}
    assert Responder._meta.get_field("user").remote_field.model is type(people["boss"])


def test_role_groups_hold_no_user_or_permission_management():
    staff, admin = role_permission_names("staff"), role_permission_names("admin")
    assert staff < admin and "identity.change_tenant" in admin - staff
    for role in ("staff", "admin"):
        group = role_group(role)
        names = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert names and names <= role_permission_names(role)
        assert not any(n.startswith(("auth.", "django_celery_beat.")) or "tenantmembership" in n for n in names)


def test_migration_puts_existing_clinic_logins_into_their_role_group(tenant, django_user_model):
    import importlib

    from django.apps import apps
    from django.db import connection

    backfill = importlib.import_module("identity.migrations.0003_backfill_role_groups").backfill
    staff = django_user_model.objects.create_user("legacy-staff", password="x", is_staff=True)
    boss = django_user_model.objects.create_user("legacy-boss", password="x", is_staff=True)
    root = django_user_model.objects.create_superuser("legacy-root", "r@x.example", "x")
    for user, role in [(staff, "staff"), (boss, "admin"), (root, "admin")]:
        TenantMembership.objects.create(user=user, tenant=tenant, role=role)
    with connection.schema_editor() as editor:
        backfill(apps, editor)
    assert list(staff.groups.values_list("name", flat=True)) == ["Clinic staff"]
    assert list(boss.groups.values_list("name", flat=True)) == ["Clinic admin"]
    assert not root.groups.exists()
