"""Admin dashboards (numbers per chart as CSV, the page, plotly.js from the package) and Customer 360 in admin."""

import csv
import io
from datetime import timedelta

import pytest

from conversations.models import Appointment, Interaction
from identity.models import TenantMembership
from tests.analytics.fixtures import at, build

pytestmark = pytest.mark.django_db
RANGE = {"start": "2026-03-01", "end": "2026-03-14"}


@pytest.fixture
def data(tenant, other_tenant):
    d = build(tenant, other_tenant)
    turns = [
        {"role": "customer", "text": "hi", "at": "2026-03-02T15:00:00+00:00"},
        {"role": "agent", "text": "hello", "at": "2026-03-02T15:00:30+00:00"},
        {"role": "customer", "text": "book", "at": "2026-03-02T15:01:00+00:00"},
        {"role": "customer", "text": "please", "at": "2026-03-02T15:01:30+00:00"},
        {"role": "agent", "text": "done", "at": "2026-03-02T15:02:30+00:00"},
    ]
    Interaction.objects.filter(pk=d["i1"].pk).update(transcript=turns, lead_score=80, satisfaction=4)
    Interaction.objects.filter(pk=d["b1"].pk).update(lead_score=70, satisfaction=2)
    appt = Appointment.objects.create(
        tenant=tenant, customer=d["a"], starts_at=at(2026, 3, 20), ends_at=at(2026, 3, 20, 1)
    )
    Appointment.objects.filter(pk=appt.pk).update(created_at=at(2026, 3, 4))
    return d


@pytest.fixture
def staff(client, tenant, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_dashboard", "view_customer"]))
    TenantMembership.objects.create(user=user, tenant=tenant)
    client.force_login(user)
    return client


def rows(client, chart, **extra):
    response = client.get(f"/admin/conversations/dashboard/csv/{chart}/", {**RANGE, **extra})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_chart_csvs_have_the_hand_checked_numbers(staff, data):
    mix = rows(staff, "channel_mix")
    assert [(r["bucket"], r["channel"], r["interactions"]) for r in mix] == [
        ("2026-03-02", "sms", "1"),
        ("2026-03-03", "voice", "1"),
        ("2026-03-05", "voice", "1"),
        ("2026-03-08", "sms", "1"),  # 03:00 UTC on the 9th is the 8th in New York
        ("2026-03-10", "chat", "1"),
        ("2026-03-11", "sms", "1"),
    ]  # the other tenant's row on 2026-03-04 is not there
    esc = {r["bucket"]: (r["escalated"], r["rate"]) for r in rows(staff, "escalation_rate")}
    assert esc["2026-03-03"] == ("1", "1.0") and esc["2026-03-02"] == ("0", "0.0")
    leads = rows(staff, "lead_conversion")
    assert [(r["bucket"], r["leads"], r["booked"]) for r in leads] == [
        ("2026-03-02", "1", "1"),
        ("2026-03-05", "1", "0"),
    ]
    rt = rows(staff, "response_times")
    assert [(r["bucket"], r["channel"], r["replies"], r["median_seconds"], r["p90_seconds"]) for r in rt] == [
        ("2026-03-02", "sms", "2", "45.0", "57.0")
    ]  # 30 s and 60 s (from the last customer turn)
    assert [(r["bucket"], r["answers"], r["avg_csat"], r["csat_4"]) for r in rows(staff, "csat")] == [
        ("2026-03-02", "1", "4.0", "1"),
        ("2026-03-05", "1", "2.0", "0"),
    ]
    sent = rows(staff, "sentiment")
    assert ("2026-03-03", "voice", "-0.25") in [(r["bucket"], r["channel"], r["avg_sentiment"]) for r in sent]


def test_staff_cannot_pick_another_tenant(staff, data, other_tenant):
    mix = rows(staff, "channel_mix", tenant=str(other_tenant.pk))
    assert "2026-03-04" not in [r["bucket"] for r in mix]


def test_dashboard_page_and_plotly_bundle(staff, data):
    page = staff.get("/admin/conversations/dashboard/", RANGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="cs-chart-data"' in html and "/admin/conversations/dashboard/plotly.min.js" in html
    assert html.count("/admin/conversations/dashboard/csv/") == 7  # one CSV per chart, dropped calls included
    js = staff.get("/admin/conversations/dashboard/plotly.min.js")
    assert js.status_code == 200 and b"plotly.js" in js.content[:2000]
    assert staff.get("/admin/conversations/dashboard/csv/nope/").status_code == 404


def test_dashboard_needs_permission(client, tenant, django_user_model):
    user = django_user_model.objects.create_user("nobody", password="x", is_staff=True)
    TenantMembership.objects.create(user=user, tenant=tenant)
    client.force_login(user)
    assert client.get("/admin/conversations/dashboard/csv/csat/").status_code in (403, 404)
    client.logout()
    assert client.get("/admin/conversations/dashboard/").status_code == 302  # to the login page


def test_customer_page_shows_customer_360(admin_client, data):
    from django.utils import timezone

    recent = timezone.now() - timedelta(days=3)  # move them all inside "the last 90 days"
    Interaction.objects.filter(customer=data["a"]).update(started_at=recent, ended_at=recent)
    html = admin_client.get(f"/admin/identity/customer/{data['a'].pk}/change/").content.decode()
    assert "Customer 360" in html and "7 interactions in the last 90 days" in html
