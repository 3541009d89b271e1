"""The access audit: staff views, API reads and exports each leave one event; events cannot be changed."""

import pytest
from django.db import DatabaseError, transaction

from identity.audit import audit_purge_allowed
from identity.models import AuditEvent


def events(**filters):
    return list(AuditEvent.objects.filter(**filters))


@pytest.mark.django_db
def test_admin_change_view_of_a_patient_is_audited(patient_row, staff_client):
    url = f"/admin/identity/customer/{patient_row.customer_id}/change/"
    assert staff_client.get(url, HTTP_USER_AGENT="pytest-browser", REMOTE_ADDR="10.1.2.3").status_code == 200
    (event,) = events(action="admin.view", object_type="identity.customer")
    assert event.customer_id == patient_row.customer_id and event.tenant_id == patient_row.tenant_id
    assert event.actor_user == staff_client.user and event.actor == "nurse-ann"
    assert event.ip == "10.1.2.3" and event.user_agent == "pytest-browser" and event.outcome == "ok"

    staff_client.get(f"/admin/conversations/interaction/{patient_row.pk}/change/")
    assert (
        events(action="admin.view", object_type="conversations.interaction")[0].customer_id == patient_row.customer_id
    )


@pytest.mark.django_db
def test_admin_list_records_filter_and_rows_without_the_search_text(patient_row, staff_client):
    staff_client.get("/admin/identity/customer/", {"q": "Zelda"})
    (event,) = events(action="admin.list")
    assert event.details == {"filters": {"q": {"chars": 5}}, "rows": 1}


@pytest.mark.django_db
def test_inbox_conversation_view_is_audited(patient_row, staff_client):
    assert staff_client.get(f"/admin/conversations/inboxconversation/{patient_row.conversation_id}/").status_code == 200
    (event,) = events(action="inbox.view")
    assert event.customer_id == patient_row.customer_id and event.actor_user == staff_client.user


@pytest.mark.django_db
def test_api_timeline_and_export_are_audited_with_key_filter_and_rows(patient_row, api, key_for, tenant):
    raw = key_for(tenant)
    get = api(tenant, key=raw)
    prefix = raw.split("_")[1]
    assert get(f"/api/v1/customers/{patient_row.customer_id}/timeline/").status_code == 200
    (event,) = events(action="api.timeline")
    assert event.customer_id == patient_row.customer_id
    assert event.actor == f"api-key:{prefix}" and event.actor_api_key == prefix and event.actor_user is None

    response = get("/api/v1/interactions/", {"format": "csv", "customer": str(patient_row.customer_id)})
    b"".join(response.streaming_content)
    (export,) = events(action="api.export")
    assert export.customer_id == patient_row.customer_id and export.details["rows"] == 1
    assert export.details["filters"]["customer"] == str(patient_row.customer_id)

    get(f"/api/v1/interactions/{patient_row.pk}/")
    assert events(action="api.read")[0].object_id == str(patient_row.pk)


@pytest.mark.django_db
def test_audit_events_api_filters_and_is_tenant_scoped(patient_row, staff_client, api, tenant, other_tenant):
    staff_client.get(f"/admin/identity/customer/{patient_row.customer_id}/change/")
    get = api(tenant, scopes=["audit:read"])
    body = get("/api/v1/audit-events/", {"customer": str(patient_row.customer_id), "actor": "nurse-ann"}).json()
    assert [e["action"] for e in body["results"]] == ["admin.view"]
    assert get("/api/v1/audit-events/", {"action": "nope"}).json()["results"] == []
    assert get("/api/v1/audit-events/", {"after": "2999-01-01T00:00:00Z"}).json()["results"] == []
    assert api(other_tenant, scopes=["audit:read"])("/api/v1/audit-events/").json()["results"] == []
    event_id = body["results"][0]["id"]
    assert api(other_tenant, scopes=["audit:read"])(f"/api/v1/audit-events/{event_id}/").status_code == 404
    assert api(tenant, scopes=["customers:read"])("/api/v1/audit-events/").status_code == 403


@pytest.mark.django_db
def test_audit_events_cannot_be_changed_through_admin_api_or_sql(patient_row, staff_client, key_for, tenant, client):
    staff_client.get(f"/admin/identity/customer/{patient_row.customer_id}/change/")
    event = AuditEvent.objects.get(action="admin.view")
    change_url = f"/admin/identity/auditevent/{event.pk}/change/"
    assert staff_client.get(change_url).status_code == 200  # viewable, read-only
    staff_client.post(change_url, {"action": "tampered"})
    assert staff_client.post(f"/admin/identity/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == "admin.view"

    auth = {"HTTP_AUTHORIZATION": f"Bearer {key_for(tenant)}"}
    assert client.delete(f"/api/v1/audit-events/{event.pk}/", **auth).status_code == 405
    assert (
        client.patch(f"/api/v1/audit-events/{event.pk}/", {}, content_type="application/json", **auth).status_code
        == 405
    )

    rows = AuditEvent.objects.filter(pk=event.pk)
    with pytest.raises(DatabaseError), transaction.atomic():
        rows.update(action="x")
    with pytest.raises(DatabaseError), transaction.atomic():
        rows.delete()
    with transaction.atomic():  # retention's purge, and only it, may delete
        audit_purge_allowed()
        rows.delete()
    assert not rows.exists()


@pytest.mark.django_db
def test_admin_searches_events_by_patient_and_by_staff(patient_row, staff_client):
    staff_client.get(f"/admin/identity/customer/{patient_row.customer_id}/change/")
    url = "/admin/identity/auditevent/"
    assert staff_client.get(url, {"q": str(patient_row.customer_id)}).context["cl"].result_count >= 1
    assert staff_client.get(url, {"q": "nurse-ann"}).context["cl"].result_count >= 1
    assert staff_client.get(url, {"q": "nobody"}).context["cl"].result_count == 0
