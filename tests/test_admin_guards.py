"""Admin guards from the security review: the patient's STOP cannot be undone by staff, dead-letter mail skips
deactivated admins, the webhook filter and URL validation reveal nothing of other tenants or internal DNS."""

from __future__ import annotations

import pytest
from django.core import mail
from django.utils import timezone

from conversations.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEventType, WebhookMessage
from conversations.webhooks.services import _tell_admins
from conversations.webhooks.ssrf import UnsafeTarget, resolve_target
from identity.models import CustomerIdentifier, TenantMembership
from tests.admin_setup import interaction_for, staff_for

pytestmark = pytest.mark.django_db


def test_staff_cannot_lift_an_opt_out_or_verify_an_identifier(tenant, django_user_model, client):
    row = interaction_for(tenant, "+14155550001", "STOP")
    identifier = CustomerIdentifier.objects.get(tenant=tenant, kind="phone", value="+14155550001")
    stopped = timezone.now()
    CustomerIdentifier.objects.filter(pk=identifier.pk).update(sms_opted_out_at=stopped, verified=False)
    client.force_login(staff_for(tenant, django_user_model, "front"))
    url = f"/admin/identity/customer/{row.customer_id}/change/"
    page = client.get(url).content.decode()
    assert 'name="identifiers-0-sms_opted_out_at' not in page and 'name="identifiers-0-verified"' not in page
    client.post(
        url,
        {  # what a hand-made form post would try
            "display_name": "x",
            "identifiers-TOTAL_FORMS": "1",
            "identifiers-INITIAL_FORMS": "1",
            "identifiers-MIN_NUM_FORMS": "0",
            "identifiers-MAX_NUM_FORMS": "1000",
            "identifiers-0-id": str(identifier.pk),
            "identifiers-0-customer": str(row.customer_id),
            "identifiers-0-sms_opted_out_at_0": "",
            "identifiers-0-sms_opted_out_at_1": "",
            "identifiers-0-verified": "on",
            "identifiers-0-DELETE": "on",
        },
    )
    identifier.refresh_from_db()
    assert identifier.sms_opted_out_at == stopped and identifier.verified is False


def test_dead_letter_mail_skips_deactivated_admins(tenant, django_user_model):
    for name, active in [("current", True), ("former", False)]:
        user = django_user_model.objects.create_user(name, f"{name}@clinic.example", "pw", is_active=active)
        TenantMembership.objects.create(user=user, tenant=tenant, role="admin")
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant, url="https://example.com/hook", events=[WebhookEventType.choices[0][0]]
    )
    message = WebhookMessage.objects.create(
        tenant=tenant, event_type=WebhookEventType.choices[0][0], payload={}, dedupe_key="k"
    )
    delivery = WebhookDelivery.objects.create(tenant=tenant, endpoint=endpoint, message=message)
    _tell_admins(delivery.pk)
    assert [m.to for m in mail.outbox] == [["current@clinic.example"]]


def test_event_type_filter_lists_the_catalogue_not_other_tenants_rows(tenant, other_tenant, django_user_model, client):
    event = WebhookEventType.choices[-1][0]
    endpoint = WebhookEndpoint.objects.create(tenant=other_tenant, url="https://example.com/hook", events=[event])
    message = WebhookMessage.objects.create(tenant=other_tenant, event_type="theirs.custom", payload={}, dedupe_key="k")
    WebhookDelivery.objects.create(tenant=other_tenant, endpoint=endpoint, message=message)
    client.force_login(staff_for(tenant, django_user_model, "a"))
    response = client.get("/admin/conversations/webhookdelivery/")
    assert response.status_code == 200
    spec = next(f for f in response.context["cl"].filter_specs if getattr(f, "parameter_name", "") == "event_type")
    assert [value for value, _ in spec.lookup_choices] == [value for value, _ in WebhookEventType.choices]
    assert "theirs.custom" not in response.content.decode()


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254"])
def test_refused_webhook_target_does_not_reveal_the_internal_address(address):
    def resolver(host, port, type):
        return [(2, 1, 6, "", (address, port))]

    with pytest.raises(UnsafeTarget) as caught:
        resolve_target("https://intranet.example/hook", resolver=resolver)
    assert address not in str(caught.value) and "does not resolve to a public address" in str(caught.value)


def test_clinic_admin_cannot_claim_phone_numbers_or_mailbox_addresses(tenant, django_user_model, client):
    from django.contrib.auth.models import Permission

    from channels_app.models import EmailMailbox

    user = staff_for(tenant, django_user_model, "clinic-boss")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="channels_app"))
    TenantMembership.objects.filter(user=user).update(role="admin")
    mailbox = EmailMailbox.objects.create(tenant=tenant, address="desk@clinic.example")
    client.force_login(user)
    page = client.get(f"/admin/identity/tenant/{tenant.pk}/change/")
    assert page.status_code == 200
    assert "phone_numbers-__prefix__-number" not in page.content.decode()  # no "add another number" row
    assert client.get("/admin/channels_app/emailmailbox/add/").status_code == 403
    change = client.get(f"/admin/channels_app/emailmailbox/{mailbox.pk}/change/")
    assert change.status_code == 200 and 'name="address"' not in change.content.decode()
    assert 'name="imap_host"' in change.content.decode()  # the clinic still runs its own IMAP settings
