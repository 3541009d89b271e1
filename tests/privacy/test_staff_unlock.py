"""Clinic admins unlock their own staff: a sign-in locked by repeated failures (django-axes) and a lost TOTP
authenticator (django-otp), from the user admin's actions — audited, and never for another clinic's staff."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from identity.models import AuditEvent
from identity.staff import staff_member_create

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/"
USERS = "/admin/auth/user/"
PASSWORD = "Marigold-Lantern-58"
User = get_user_model()


def member(tenant, username: str, role: str = "staff"):
    user = User(username=username, first_name=username.title())
    user.set_password(PASSWORD)
    staff_member_create(tenant=tenant, user=user, role=role)
    return user


def lock_out(username: str) -> Client:
    browser = Client()
    for guess in ["marigold lantern", "Marigold-Lantern-85", "marigold-lantern-58"]:
        browser.post(LOGIN, {"username": username, "password": guess})
    assert browser.post(LOGIN, {"username": username, "password": PASSWORD}).status_code == 429
    return browser


@pytest.fixture
def staff(tenant, other_tenant, client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    boss = member(tenant, "ines.boss", role="admin")
    client.force_login(boss)  # password + TOTP verified
    return {
        "boss": boss,
        "desk": member(tenant, "rosalind"),
        "nurse": member(tenant, "tomás", role="admin"),
        "other": member(other_tenant, "bjorn"),
    }


def test_clinic_admin_unlocks_their_own_staff_only_and_it_is_audited(staff, client):
    desk_browser, other_browser = lock_out("rosalind"), lock_out("bjorn")
    selected = [staff["desk"].pk, staff["other"].pk]
    response = client.post(USERS, {"action": "unlock_sign_in", "_selected_action": selected})
    assert response.status_code == 302

    assert desk_browser.post(LOGIN, {"username": "rosalind", "password": PASSWORD}).status_code == 302
    assert other_browser.post(LOGIN, {"username": "bjorn", "password": PASSWORD}).status_code == 429  # still locked
    (event,) = AuditEvent.objects.filter(action="staff.lockout_reset")
    assert (event.actor_user_id, event.object_id, event.tenant_id) == (
        staff["boss"].pk,
        str(staff["desk"].pk),
        staff["boss"].membership.tenant_id,
    )
    assert LogEntry.objects.filter(user=staff["boss"], object_id=str(staff["desk"].pk)).exists()


def test_another_clinics_staff_keep_their_authenticator_when_selected_with_ours(staff, client):
    for user in (staff["desk"], staff["other"]):
        TOTPDevice.objects.create(user=user, name="Pixel", confirmed=True)
    selected = [staff["desk"].pk, staff["other"].pk, staff["boss"].pk]  # a forged selection, and herself
    client.post(USERS, {"action": "reset_two_factor", "_selected_action": selected})
    assert not TOTPDevice.objects.filter(user=staff["desk"]).exists()  # the action ran
    assert TOTPDevice.objects.filter(user=staff["other"]).count() == 1
    assert TOTPDevice.objects.filter(user=staff["boss"]).count() == 1  # never her own (she would lock herself out)
    assert list(AuditEvent.objects.filter(action="staff.otp_reset").values_list("object_id", flat=True)) == [
        str(staff["desk"].pk)
    ]


def test_reset_two_factor_ends_the_old_device_and_asks_for_a_new_enrolment(staff, client):
    nurse = staff["nurse"]  # a clinic admin: two-factor is required
    nurse_browser = Client()
    nurse_browser.force_login(nurse)  # signed in and verified with the phone she then loses
    assert nurse_browser.get("/admin/").status_code == 200

    response = client.post(USERS, {"action": "reset_two_factor", "_selected_action": [nurse.pk]})
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=nurse).exists()
    assert nurse_browser.get("/admin/")["Location"].startswith("/admin/otp/setup/")  # verified no more
    (event,) = AuditEvent.objects.filter(action="staff.otp_reset")
    assert event.object_id == str(nurse.pk) and event.details == {"devices": 1}


def test_plain_staff_cannot_use_the_reset_actions(staff, tenant):
    desk_browser = Client()
    desk_browser.force_login(staff["desk"])
    TOTPDevice.objects.create(user=staff["nurse"], name="Pixel", confirmed=True)
    response = desk_browser.post(USERS, {"action": "reset_two_factor", "_selected_action": [staff["nurse"].pk]})
    assert response.status_code == 403
    assert TOTPDevice.objects.filter(user=staff["nurse"]).exists()
