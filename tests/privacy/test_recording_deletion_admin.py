"""Staff see their clinic's recording deletions in admin — a stuck one with its error — and nobody else's."""

import pytest
from django.utils import timezone

from conversations.recordings.models import RecordingDeletion
from tests.admin_setup import staff_for

pytestmark = pytest.mark.django_db


def deletion(tenant, sid, **fields):
    return RecordingDeletion.objects.create(
        tenant=tenant, recording_sid=sid, reason="erase", requested_at=timezone.now(), **fields
    )


def test_a_stuck_deletion_is_listed_with_its_error_for_its_own_clinic_only(
    client, tenant, other_tenant, django_user_model
):
    deletion(tenant, "RE" + "a" * 32, attempts=3, last_error="twilio 401: credentials refused")
    deletion(tenant, "RE" + "b" * 32, deleted_at=timezone.now(), attempts=1)
    deletion(other_tenant, "RE" + "c" * 32, attempts=2, last_error="twilio 503")
    client.force_login(staff_for(tenant, django_user_model, "staff-rec"))

    stuck = client.get("/admin/conversations/recordingdeletion/?state=stuck").content.decode()
    assert "RE" + "a" * 32 in stuck and "credentials refused" in stuck
    assert "RE" + "b" * 32 not in stuck and "RE" + "c" * 32 not in stuck
    everything = client.get("/admin/conversations/recordingdeletion/").content.decode()
    assert "RE" + "b" * 32 in everything and "RE" + "c" * 32 not in everything
    assert client.get("/admin/conversations/recordingdeletion/add/").status_code == 403
