"""Operator console: staff see only their tenant's rows everywhere; transcripts are escaped; merge action."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission

from conversations.models import Interaction
from identity.models import Customer, TenantMembership
from tests.admin_setup import interaction_for, staff_for


@pytest.fixture
def two_clinics(tenant, other_tenant, django_user_model, client):
    mine = interaction_for(tenant, "+14155550001", "mine")
    theirs = interaction_for(other_tenant, "+14155550002", "theirs")
    client.force_login(staff_for(tenant, django_user_model, "staff-a"))
    return mine, theirs


@pytest.mark.django_db
def test_lists_show_only_own_tenant(two_clinics, client):
    mine, theirs = two_clinics
    for url in ["/admin/conversations/interaction/", "/admin/identity/customer/", "/admin/conversations/conversation/"]:
        body = client.get(url).content.decode()
        assert str(mine.customer_id)[:8] in body or "+14155550001" in body or str(mine.conversation_id) in body, url
        assert "+14155550002" not in body and str(theirs.conversation_id) not in body, url


@pytest.mark.django_db
def test_other_tenant_detail_is_not_reachable(two_clinics, client):
    _, theirs = two_clinics
    for url in [
        f"/admin/conversations/interaction/{theirs.pk}/change/",
        f"/admin/identity/customer/{theirs.customer_id}/change/",
        f"/admin/identity/tenant/{theirs.tenant_id}/change/",
    ]:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/" in response["Location"], url  # "doesn't exist" redirect
        assert "theirs" not in client.get(url, follow=True).content.decode()


@pytest.mark.django_db
def test_search_by_phone_is_scoped(two_clinics, client):
    for url in ["/admin/identity/customer/", "/admin/conversations/interaction/"]:
        assert client.get(url, {"q": "+14155550001"}).context["cl"].result_count == 1, url
        assert client.get(url, {"q": "+14155550002"}).context["cl"].result_count == 0, url


@pytest.mark.django_db
def test_actions_only_touch_own_tenant(two_clinics, client, tenant):
    mine, theirs = two_clinics
    response = client.post(
        "/admin/identity/customer/",
        {"action": "merge_customers", "_selected_action": [str(mine.customer_id), str(theirs.customer_id)]},
    )
    assert response.status_code == 302  # "select exactly two" — the foreign row is invisible to the action
    assert Customer.objects.filter(merged_into__isnull=False).count() == 0


@pytest.mark.django_db
def test_transcript_html_is_escaped(tenant, django_user_model, client):
    row = interaction_for(tenant, "+14155550003", "<script>alert('x')</script><b>bold</b>")
    client.force_login(staff_for(tenant, django_user_model, "staff-x"))
    for url in [
        f"/admin/conversations/interaction/{row.pk}/change/",
        f"/admin/identity/customer/{row.customer_id}/change/",
    ]:
        body = client.get(url).content.decode()
        assert "<script>alert(" not in body and "<b>bold</b>" not in body, url
        assert "&lt;script&gt;alert(" in body, url


@pytest.mark.django_db
def test_merge_action_with_survivor_choice(tenant, django_user_model, client):
    a = interaction_for(tenant, "+14155550004", "from a")
    b = interaction_for(tenant, "+14155550005", "from b")
    client.force_login(staff_for(tenant, django_user_model, "staff-m"))
    selected = [str(a.customer_id), str(b.customer_id)]
    page = client.post("/admin/identity/customer/", {"action": "merge_customers", "_selected_action": selected})
    assert page.status_code == 200 and b"Choose the customer to keep" in page.content
    client.post(
        "/admin/identity/customer/",
        {"action": "merge_customers", "_selected_action": selected, "survivor": str(b.customer_id)},
    )
    assert set(Interaction.objects.values_list("customer", flat=True)) == {b.customer_id}
    assert Customer.objects.get(pk=a.customer_id).merged_into_id == b.customer_id


@pytest.mark.django_db
def test_staff_without_membership_sees_nothing(tenant, django_user_model, client):
    interaction_for(tenant, "+14155550006", "hidden")
    user = django_user_model.objects.create_user("loner", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="conversations"))
    client.force_login(user)
    response = client.get("/admin/conversations/interaction/")
    assert response.status_code == 200 and response.context["cl"].result_count == 0


@pytest.mark.django_db
def test_twilio_token_is_write_only_in_admin(tenant, django_user_model, client):
    admin_user = staff_for(tenant, django_user_model, "clinic-admin")
    TenantMembership.objects.filter(user=admin_user).update(role="admin")
    client.force_login(admin_user)
    url = f"/admin/identity/tenant/{tenant.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and tenant.twilio_auth_token not in page.content.decode()
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "twilio_auth_token"}
    data.update(
        {
            "allowed_widget_origins": ",".join(tenant.allowed_widget_origins),
            "intents": "{}",
            "emergency_phrases": '["chest pain"]',
            "lead_intents": "[]",
            "state_ttl": "30 00:00:00",
            "sms_idle_window": "00:30:00",
            "twilio_auth_token": "",
            **{f"{p}-TOTAL_FORMS": "0" for p in ("phone_numbers", "memberships")},
            **{f"{p}-INITIAL_FORMS": "0" for p in ("phone_numbers", "memberships")},
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    tenant.refresh_from_db()
    assert tenant.twilio_auth_token.startswith("token")  # blank kept the stored token
    data["twilio_auth_token"] = "new-token-value"
    client.post(url, data)
    tenant.refresh_from_db()
    assert tenant.twilio_auth_token == "new-token-value"


@pytest.mark.django_db
def test_plain_staff_cannot_see_or_change_credentials_or_memberships(tenant, django_user_model, client):
    client.force_login(staff_for(tenant, django_user_model, "front-desk"))
    page = client.get(f"/admin/identity/tenant/{tenant.pk}/change/")
    body = page.content.decode()
    assert tenant.twilio_auth_token not in body and 'name="twilio_auth_token"' not in body
    assert 'name="memberships-0-user"' not in body and 'name="memberships-0-role"' not in body


@pytest.mark.django_db
def test_a_clinic_admin_sets_the_conversation_quiet_period_within_the_state_ttl(tenant, django_user_model, client):
    admin_user = staff_for(tenant, django_user_model, "clinic-admin")
    TenantMembership.objects.filter(user=admin_user).update(role="admin")
    client.force_login(admin_user)
    url = f"/admin/identity/tenant/{tenant.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "twilio_auth_token"}
    data.update(
        {
            "allowed_widget_origins": ",".join(tenant.allowed_widget_origins),
            "intents": "{}",
            "emergency_phrases": '["chest pain"]',
            "lead_intents": "[]",
            "state_ttl": "30 00:00:00",
            "sms_idle_window": "00:30:00",
            "conversation_quiet_period": "31 00:00:00",
            **{f"{p}-TOTAL_FORMS": "0" for p in ("phone_numbers", "memberships")},
            **{f"{p}-INITIAL_FORMS": "0" for p in ("phone_numbers", "memberships")},
        }
    )
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert "within the state TTL" in str(refused.context["adminform"].form.errors["conversation_quiet_period"])
    data["conversation_quiet_period"] = "08:00:00"
    assert client.post(url, data).status_code == 302
    tenant.refresh_from_db()
    assert tenant.conversation_quiet_period == timedelta(hours=8)
