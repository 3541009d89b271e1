"""Staff users and patient rows for admin tests."""

from django.contrib.auth.models import Permission

from conversations import services
from identity.models import TenantMembership
from identity.services import customer_resolve


def staff_for(tenant, django_user_model, username):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["identity", "conversations"]))
    TenantMembership.objects.create(user=user, tenant=tenant)
    return user


def interaction_for(tenant, phone, text):
    customer = customer_resolve(tenant=tenant, phone=phone).customer
    row, _ = services.session_open(tenant=tenant, customer=customer, channel="sms")
    services.interaction_append_turn(interaction=row, role="customer", text=text)
    return row
