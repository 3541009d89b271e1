"""Connecting a CRM (OAuth consent → signed state → code exchange at the vendor's stub) and the admin actions:
test connection, backfill, dead-letter replay — each scoped to the clinic admin's own tenant."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.utils import timezone

from crm import oauth
from crm.models import CrmConnection, CrmDelivery
from crm.services import crm_deliveries_enqueue, crm_delivery_attempt, crm_redrive
from identity.staff import staff_member_create
from tests.broker import take_queued
from tests.crm.records import connect, enriched, patient

pytestmark = pytest.mark.django_db

CONNECTIONS = "/admin/crm/crmconnection/"
DELIVERIES = "/admin/crm/crmdelivery/"


def member(django_user_model, tenant, username, role):
    user = django_user_model(username=username, email=f"{username}@clinica-sol.example")
    user.set_password("pw-" + username)
    staff_member_create(tenant=tenant, user=user, role=role)
    return user


@pytest.fixture
def boss(tenant, django_user_model, client):
    user = member(django_user_model, tenant, "dra-nuñez", "admin")
    client.force_login(user)
    return user


def start(client, provider: str) -> dict:
    response = client.get(f"/crm/oauth/{provider}/start/")
    assert response.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(response["Location"]).query).items()} | {"_url": response["Location"]}


def test_hubspot_connect_stores_encrypted_tokens_for_the_admins_clinic(boss, client, tenant, hubspot, settings):
    settings.CRM_HUBSPOT_AUTHORIZE_URL = "https://app.hubspot.com/oauth/authorize"
    params = start(client, "hubspot")
    assert params["_url"].startswith("https://app.hubspot.com/oauth/authorize?")
    assert params["client_id"] == "hs-client-id"
    assert params["redirect_uri"] == "https://clinic.example.com/crm/oauth/hubspot/callback/"
    assert "crm.objects.contacts.write" in params["scope"]

    response = client.get("/crm/oauth/hubspot/callback/", {"code": "na1-4f1c-code", "state": params["state"]})

    connection = CrmConnection.objects.get(tenant=tenant, provider="hubspot")
    assert response.status_code == 302 and response["Location"] == f"{CONNECTIONS}{connection.pk}/change/"
    (exchange,) = hubspot.calls("POST", r"^/oauth/v1/token$")
    assert exchange["form"]["grant_type"] == "authorization_code" and exchange["form"]["code"] == "na1-4f1c-code"
    assert exchange["form"]["redirect_uri"] == params["redirect_uri"]
    assert connection.status == "active" and connection.access_token in hubspot.valid_tokens
    assert connection.refresh_token == "rt-1" and connection.token_expires_at > timezone.now()
    # the same state cannot be used twice (the session's nonce is gone)
    again = client.get("/crm/oauth/hubspot/callback/", {"code": "na1-4f1c-code", "state": params["state"]})
    assert again.status_code == 400 and len(hubspot.calls("POST", r"^/oauth/v1/token$")) == 1


@pytest.mark.parametrize(
    "tamper",
    ["forged", "other-provider", "other-user", "no-session"],
)
def test_a_bad_state_is_refused_before_any_token_call(tamper, boss, client, tenant, hubspot, django_user_model, zoho):
    params = start(client, "hubspot")
    state, provider = params["state"], "hubspot"
    if tamper == "forged":
        state = state[:-3] + ("abc" if not state.endswith("abc") else "xyz")
    elif tamper == "other-provider":
        provider = "zoho"
    elif tamper == "other-user":  # another admin's browser holding the same nonce: the state names the first admin
        nonce = client.session[oauth.SESSION_KEY]
        client.force_login(member(django_user_model, tenant, "otro-admin", "admin"))
        session = client.session
        session[oauth.SESSION_KEY] = nonce
        session.save()
    elif tamper == "no-session":
        client.logout()
        client.force_login(boss)  # a new session: the nonce of the first one is not there
    response = client.get(f"/crm/oauth/{provider}/callback/", {"code": "c", "state": state})
    assert response.status_code == 400
    assert hubspot.calls("POST", r"/oauth") == [] and zoho.calls("POST", r"/oauth") == []
    assert not CrmConnection.objects.exists()


def test_front_desk_staff_cannot_connect(tenant, django_user_model, client, hubspot):
    client.force_login(member(django_user_model, tenant, "recepcion", "staff"))
    assert client.get("/crm/oauth/hubspot/start/").status_code == 403
    assert client.get("/crm/oauth/hubspot/callback/", {"code": "c", "state": "x"}).status_code == 403
    assert client.get("/crm/oauth/pipedrive/start/").status_code == 404


def test_zoho_connect_uses_only_zohos_accounts_servers(boss, client, tenant, zoho):
    params = start(client, "zoho")
    assert params["access_type"] == "offline" and params["_url"].startswith(f"{zoho.base}/oauth/v2/auth?")
    evil = client.get(
        "/crm/oauth/zoho/callback/",
        {"code": "1000.abc", "state": params["state"], "accounts-server": "https://accounts.zoho.com.evil.example"},
    )
    assert evil.status_code == 400 and zoho.requests == []  # the client secret never went anywhere

    params = start(client, "zoho")
    ok = client.get(
        "/crm/oauth/zoho/callback/", {"code": "1000.abc", "state": params["state"], "accounts-server": zoho.base}
    )
    assert ok.status_code == 302
    connection = CrmConnection.objects.get(tenant=tenant, provider="zoho")
    assert connection.instance_url == zoho.base and connection.accounts_url == zoho.base


def test_salesforce_connect_keeps_the_instance_url_and_a_denied_consent_changes_nothing(
    boss, client, tenant, salesforce
):
    params = start(client, "salesforce")
    assert params["_url"].startswith(f"{salesforce.base}/services/oauth2/authorize?")
    denied = client.get(
        "/crm/oauth/salesforce/callback/",
        {"error": "access_denied", "error_description": "end-user denied authorization", "state": params["state"]},
    )
    assert denied.status_code == 302 and not CrmConnection.objects.exists()

    params = start(client, "salesforce")
    client.get("/crm/oauth/salesforce/callback/", {"code": "aPrx-code", "state": params["state"]})
    connection = CrmConnection.objects.get(tenant=tenant, provider="salesforce")
    assert connection.instance_url == salesforce.base and connection.external_account == "00D5g000004ORGXEAW"


def test_connection_list_is_scoped_and_test_connection_reports_both_ways(boss, client, tenant, other_tenant, hubspot):
    mine = connect(tenant, "hubspot")
    theirs = connect(other_tenant, "hubspot", access_token="at-2")
    page = client.get(CONNECTIONS)
    assert [c.pk for c in page.context["cl"].result_list] == [mine.pk]
    assert "/crm/oauth/zoho/start/" in page.content.decode()
    assert client.get(f"{CONNECTIONS}{theirs.pk}/change/").status_code == 302  # not found → back to the index
    html = client.get(f"{CONNECTIONS}{mine.pk}/change/").content.decode()
    assert "at-1" not in html and "rt-1" not in html  # tokens are never shown

    ok = client.post(
        CONNECTIONS, {"action": "test_connection", ACTION_CHECKBOX_NAME: [mine.pk, theirs.pk]}, follow=True
    )
    assert "HubSpot: connected" in ok.content.decode()
    assert len(hubspot.calls("GET", r"/crm/v3/objects/contacts$")) == 1  # the other clinic's row was ignored

    hubspot.fail_next(
        "GET",
        r"/contacts$",
        403,
        {
            "status": "error",
            "message": "This app hasn't been granted all required scopes",
            "category": "MISSING_SCOPES",
        },
    )
    bad = client.post(CONNECTIONS, {"action": "test_connection", ACTION_CHECKBOX_NAME: [mine.pk]}, follow=True)
    assert "MISSING_SCOPES" in bad.content.decode()
    mine.refresh_from_db()
    assert "MISSING_SCOPES" in mine.last_error


def test_field_map_rejects_unknown_fields(boss, client, tenant):
    mine = connect(tenant, "hubspot")
    response = client.post(f"{CONNECTIONS}{mine.pk}/change/", {"field_map": '{"transcript": "notes__c"}'})
    assert response.status_code == 200 and "Unknown field(s): transcript" in response.content.decode()
    client.post(f"{CONNECTIONS}{mine.pk}/change/", {"field_map": '{"lead_score": "callsphere_lead_score"}'})
    mine.refresh_from_db()
    assert mine.field_map == {"lead_score": "callsphere_lead_score"}


def test_the_clinic_admin_sees_and_sets_the_appointment_switches(boss, client, tenant):
    mine = connect(tenant, "zoho")
    page = client.get(f"{CONNECTIONS}{mine.pk}/change/").content.decode()
    boxes = dict(re.findall(r'<input type="checkbox" name="(sync_appointments|appointment_reason)"([^>]*)>', page))
    assert boxes["sync_appointments"].endswith(" checked")
    assert "checked" not in boxes["appointment_reason"]  # the reason for the visit stays home by default
    client.post(f"{CONNECTIONS}{mine.pk}/change/", {"field_map": "{}", "appointment_reason": "on"})
    mine.refresh_from_db()
    assert mine.appointment_reason and not mine.sync_appointments  # an unticked box is off


def test_backfill_queues_the_last_n_days_and_the_sweep_sends_them(
    boss, client, tenant, other_tenant, hubspot, empty_queue
):
    mine = connect(tenant, "hubspot")
    ines = patient(tenant)
    recent = enriched(ines, minutes_ago=60 * 24 * 3)
    old = enriched(ines, minutes_ago=60 * 24 * 40)
    enriched(patient(other_tenant, phone="+5215512345678"))  # another clinic's: never backfilled here

    form = client.post(CONNECTIONS, {"action": "backfill", ACTION_CHECKBOX_NAME: [mine.pk]})
    assert form.status_code == 200 and "Days back" in form.content.decode()
    invalid = client.post(CONNECTIONS, {"action": "backfill", ACTION_CHECKBOX_NAME: [mine.pk], "days": "400"})
    assert invalid.status_code == 200 and not CrmDelivery.objects.exists()
    done = client.post(CONNECTIONS, {"action": "backfill", ACTION_CHECKBOX_NAME: [mine.pk], "days": "7"}, follow=True)
    assert "1 conversation(s) and appointment(s) queued" in done.content.decode()
    (row,) = CrmDelivery.objects.all()
    assert row.interaction_id == recent.pk and row.interaction_id != old.pk
    client.post(CONNECTIONS, {"action": "backfill", ACTION_CHECKBOX_NAME: [mine.pk], "days": "7"})
    assert CrmDelivery.objects.count() == 1  # a second backfill adds nothing

    assert crm_redrive() == 1
    assert take_queued() == [("crm.tasks.crm_deliver", [row.pk])]
    assert crm_delivery_attempt(delivery_id=row.pk) == "succeeded"


def test_replay_of_a_failed_delivery_writes_no_duplicate(
    boss, client, tenant, other_tenant, hubspot, django_user_model, django_capture_on_commit_callbacks
):
    connect(tenant, "hubspot")
    sms = enriched(patient(tenant))
    (pk,) = crm_deliveries_enqueue(interaction_id=sms.pk)
    hubspot.fail_next(
        "POST",
        r"/objects/notes$",
        400,
        {"status": "error", "message": 'Property "hs_note_body" is required', "category": "VALIDATION_ERROR"},
    )
    assert crm_delivery_attempt(delivery_id=pk) == "failed"
    theirs = connect(other_tenant, "hubspot", access_token="at-2")
    (their_pk,) = crm_deliveries_enqueue(interaction_id=enriched(patient(other_tenant, phone="+34600111222")).pk)
    CrmDelivery.objects.filter(pk=their_pk).update(status="failed", completed_at=timezone.now())

    listed = client.get(DELIVERIES, {"status": "failed"})
    assert [d.pk for d in listed.context["cl"].result_list] == [pk]
    assert "VALIDATION_ERROR" in listed.content.decode()

    desk = django_user_model(username="recepcion")
    staff_member_create(tenant=tenant, user=desk, role="staff")
    client.force_login(desk)
    client.post(DELIVERIES, {"action": "replay", ACTION_CHECKBOX_NAME: [pk]})
    assert CrmDelivery.objects.get(pk=pk).status == "failed"  # front desk cannot replay

    client.force_login(boss)
    with django_capture_on_commit_callbacks(execute=False):
        client.post(DELIVERIES, {"action": "replay", ACTION_CHECKBOX_NAME: [pk, their_pk]})
    assert CrmDelivery.objects.get(pk=their_pk).status == "failed"  # another clinic's row is out of reach
    assert crm_delivery_attempt(delivery_id=pk, now=timezone.now() + timedelta(seconds=1)) == "succeeded"
    assert len(hubspot.objects["contacts"]) == 1 and len(hubspot.objects["notes"]) == 1
    theirs.refresh_from_db()
    assert theirs.status == "active"
