"""Admin actions that change data are offered only to staff with the change permission (Django runs an action
without ``permissions`` for anyone who can open the changelist): view-only staff can neither see nor run them."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from conversations.api.models import ApiKey
from conversations.api.services import api_key_create
from conversations.models import Appointment, Conversation
from conversations.services import session_open
from conversations.webhooks.models import WebhookDelivery, WebhookEndpoint
from conversations.webhooks.services import webhook_event_emit
from identity.models import TenantMembership
from identity.services import customer_resolve

pytestmark = pytest.mark.django_db


def staff(tenant, django_user_model, username, actions):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    perms = Permission.objects.filter(
        content_type__app_label__in=["identity", "conversations"], codename__regex=rf"^({'|'.join(actions)})_"
    )
    user.user_permissions.set(perms)
    TenantMembership.objects.create(user=user, tenant=tenant)
    return user


@pytest.fixture
def rows(tenant):
    customers = [customer_resolve(tenant=tenant, phone=p).customer for p in ("+14155550001", "+14155550002")]
    interaction, _ = session_open(tenant=tenant, customer=customers[0], channel="sms")
    start = timezone.now() + timedelta(days=2)
    appointment = Appointment.objects.create(
        tenant=tenant, customer=customers[0], starts_at=start, ends_at=start + timedelta(minutes=30)
    )
    key, _ = api_key_create(tenant=tenant, name="loader")
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant, url="https://hooks.example.com/x", events=["incident.acknowledged"]
    )
    message = webhook_event_emit(tenant=tenant, event_type="incident.acknowledged", payload={}, dedupe_key="k")
    delivery = WebhookDelivery.objects.get(message=message)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="dead", completed_at=timezone.now())
    return {
        "customers": customers,
        "conversation": interaction.conversation,
        "appointment": appointment,
        "key": key,
        "endpoint": endpoint,
        "delivery": delivery,
    }


def changed(rows):
    """What each guarded action would change, as comparable values."""
    a = Appointment.objects.get(pk=rows["appointment"].pk)
    e = WebhookEndpoint.objects.get(pk=rows["endpoint"].pk)
    return {
        "appointment": a.status,
        "key": ApiKey.objects.get(pk=rows["key"].pk).revoked_at,
        "endpoint": (e.secret, e.is_active),
        "delivery": WebhookDelivery.objects.get(pk=rows["delivery"].pk).status,
        "customers": sorted(
            str(c.merged_into_id)
            for c in type(rows["customers"][0]).objects.filter(pk__in=[c.pk for c in rows["customers"]])
        ),
    }


def offered(page) -> dict:
    form = page.context["action_form"]  # None when no action at all is offered
    return dict(form.fields["action"].choices) if form else {}


CASES = [  # changelist, action, selected rows
    ("/admin/conversations/appointment/", "cancel_appointments", lambda r: [r["appointment"].pk]),
    ("/admin/identity/customer/", "merge_customers", lambda r: [c.pk for c in r["customers"]]),
    ("/admin/conversations/conversation/", "start_fresh_action", lambda r: [r["conversation"].pk]),
    ("/admin/conversations/apikey/", "revoke", lambda r: [r["key"].pk]),
    ("/admin/conversations/webhookendpoint/", "rotate_secret", lambda r: [r["endpoint"].pk]),
    ("/admin/conversations/webhookendpoint/", "disable", lambda r: [r["endpoint"].pk]),
    ("/admin/conversations/webhookendpoint/", "enable", lambda r: [r["endpoint"].pk]),
    ("/admin/conversations/webhookdelivery/", "replay", lambda r: [r["delivery"].pk]),
]


@pytest.mark.parametrize("url, action, selected", CASES, ids=[c[1] for c in CASES])
def test_view_only_staff_cannot_run_data_changing_actions(
    client, tenant, django_user_model, rows, url, action, selected
):
    client.force_login(staff(tenant, django_user_model, "viewer", ["view"]))
    page = client.get(url)
    assert page.status_code == 200
    assert action not in offered(page)
    if action == "enable":
        WebhookEndpoint.objects.filter(pk=rows["endpoint"].pk).update(is_active=False)
    before = changed(rows)
    client.post(url, {"action": action, "_selected_action": selected(rows), "survivor": str(selected(rows)[0])})
    assert changed(rows) == before


@pytest.mark.parametrize("url, action, selected", CASES, ids=[c[1] for c in CASES])
def test_staff_with_change_permission_are_offered_them(client, tenant, django_user_model, rows, url, action, selected):
    client.force_login(staff(tenant, django_user_model, "editor", ["view", "change"]))
    assert action in offered(client.get(url))


def test_replay_by_an_editor_requeues(client, tenant, django_user_model, rows):
    client.force_login(staff(tenant, django_user_model, "editor", ["view", "change"]))
    client.post(
        "/admin/conversations/webhookdelivery/", {"action": "replay", "_selected_action": [rows["delivery"].pk]}
    )
    assert WebhookDelivery.objects.get(pk=rows["delivery"].pk).status == "pending"
    assert Conversation.objects.filter(pk=rows["conversation"].pk).exists()
