"""Escalation test steps: raising and firing an incident, paging both responders, Twilio-signed call callbacks,
staff with report permissions, the phone-sized browser context."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from twilio.request_validator import RequestValidator

from escalation import services
from escalation.models import Incident, NotificationAttempt, Responder
from identity.models import TenantMembership
from tests.escalation.conftest import CLINIC_NUMBER


def call_post(client, path, tenant, params):
    sig = RequestValidator(tenant.twilio_auth_token).compute_signature(settings.PUBLIC_BASE_URL + path, params)
    return client.post(path, params, HTTP_X_TWILIO_SIGNATURE=sig)


def call_params(tenant, attempt, **extra):
    return {
        "AccountSid": tenant.twilio_account_sid,
        "CallSid": attempt.provider_sid,
        "From": CLINIC_NUMBER,
        "To": attempt.to_number,
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
        **extra,
    }


def raise_and_fire(interaction, urgency=5):
    incident, created = services.incident_raise(interaction=interaction, urgency=urgency, reason="emergency phrase")
    assert created
    outcome = services.incident_run_step(incident_id=incident.pk, fence=incident.fence, dispatch=False)
    incident.refresh_from_db()
    return incident, outcome


def page_both(interaction) -> Incident:
    """Raise, page the primary (call + SMS), let its wait pass, page the backup: two live calls."""
    incident, _ = services.incident_raise(interaction=interaction, urgency=5, reason="emergency phrase")
    now = timezone.now()
    for _ in range(2):
        incident.refresh_from_db()
        outcome = services.incident_run_step(incident_id=incident.pk, fence=incident.fence, now=now, dispatch=False)
        for item in outcome.outbound:
            services.attempt_deliver(outbound=item)
        now += timedelta(seconds=61)
    incident.refresh_from_db()
    return incident


def call_of(incident, to) -> NotificationAttempt:
    return NotificationAttempt.objects.get(incident=incident, channel="voice", to_number=to)


def signed_post(client, path, tenant, params):
    sig = RequestValidator(tenant.twilio_auth_token).compute_signature(settings.PUBLIC_BASE_URL + path, params)
    return client.post(path, params, HTTP_X_TWILIO_SIGNATURE=sig)


PHONE = {"viewport": {"width": 375, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


def pending_retry(incident) -> NotificationAttempt:
    """Turn the primary's call into a retry still waiting to go out: acknowledging must cancel it."""
    attempt = NotificationAttempt.objects.filter(incident=incident, channel="voice").first()
    NotificationAttempt.objects.filter(pk=attempt.pk).update(status="pending", provider_sid="", claimed_at=None)
    return attempt


def staff_with_perms(django_user_model, tenant):
    from django.contrib.auth.models import Permission

    user = staff(django_user_model, tenant, "ops")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="escalation"))
    return user


def staff(django_user_model, tenant, name="frontdesk"):
    user = django_user_model.objects.create_user(name, f"{name}@clinic.example", "pw", is_staff=True)
    TenantMembership.objects.create(user=user, tenant=tenant, role="admin")
    return user


def deliver(outcome):
    """What the step's on-commit dispatch does, sequentially (this test's transaction is not committed)."""
    for item in outcome.outbound:
        services.attempt_deliver(outbound=item)


ADMIN_PHONE = "+15557770199"


def make_admin(tenant, phone=ADMIN_PHONE, role="admin", username=None):
    user = get_user_model().objects.create_user(
        username=username or f"admin-{phone}", password="x", is_staff=True, email="a@example.com"
    )
    TenantMembership.objects.create(user=user, tenant=tenant, role=role)
    Responder.objects.create(tenant=tenant, name="Dana Admin", phone=phone, user=user)
    return user
