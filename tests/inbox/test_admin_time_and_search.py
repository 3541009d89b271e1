"""Admin in the clinic's time (America/New_York), newest first, urgency filter, full-text search of call_logs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission

from conversations import services
from conversations.models import Interaction
from identity.models import TenantMembership
from identity.services import customer_resolve

pytestmark = pytest.mark.django_db


def staff_for(tenant, django_user_model, username="staff-ny"):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True, first_name="Nina")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["identity", "conversations"]))
    TenantMembership.objects.create(user=user, tenant=tenant)
    return user


def row(tenant, phone, text, at, urgency=None):
    customer = customer_resolve(tenant=tenant, phone=phone).customer
    interaction, _ = services.session_open(tenant=tenant, customer=customer, channel="sms", at=at)
    services.interaction_append_turn(interaction=interaction, role="customer", text=text, at=at)
    if urgency:
        services.interaction_set_assessment(interaction=interaction, urgency=urgency)
    return interaction


def test_admin_shows_clinic_local_time_newest_first(tenant, django_user_model, client):
    assert tenant.timezone == "America/New_York"
    row(tenant, "+14155550001", "older", datetime(2026, 3, 9, 12, 0, tzinfo=UTC))
    row(tenant, "+14155550002", "appointment at three", datetime(2026, 3, 10, 19, 0, tzinfo=UTC))  # 3 PM EDT
    client.force_login(staff_for(tenant, django_user_model))
    body = client.get("/admin/conversations/interaction/").content.decode()
    assert "March 10, 2026, 3 p.m." in body and "7 p.m." not in body
    assert body.index("March 10, 2026") < body.index("March 9, 2026")  # newest first
    assert "March 9, 2026, 8 a.m." in body


def test_superuser_without_clinic_sees_utc(tenant, django_user_model, client):
    row(tenant, "+14155550002", "hello", datetime(2026, 3, 10, 19, 0, tzinfo=UTC))
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    assert "March 10, 2026, 7 p.m." in client.get("/admin/conversations/interaction/").content.decode()


def test_call_logs_filter_by_urgency_and_full_text_search(tenant, other_tenant, django_user_model, client):
    now = datetime(2026, 3, 10, 19, 0, tzinfo=UTC)
    chest = row(tenant, "+14155550001", "I have chest pains since this morning", now, urgency=5)
    calm = row(tenant, "+14155550002", "Can I book a cleaning?", now, urgency=1)
    theirs = row(other_tenant, "+14155550003", "my chest hurts", now, urgency=5)
    client.force_login(staff_for(tenant, django_user_model))
    url = "/admin/conversations/interaction/"

    def listed(params):
        response = client.get(url, params)
        assert response.status_code == 200
        return {i.pk for i in response.context["cl"].result_list}

    assert listed({"q": "chest"}) == {chest.pk}  # stemmed full-text ("pains" ~ "pain"), own tenant only
    assert listed({"q": "pain"}) == {chest.pk}
    assert listed({"q": "booking"}) == {calm.pk}
    assert listed({"q": "+14155550002"}) == {calm.pk}  # identifiers still searchable
    assert listed({"urgency": "5"}) == {chest.pk}
    assert listed({"urgency": "1"}) == {calm.pk}
    assert theirs.pk not in listed({})
    assert Interaction.objects.count() == 3
