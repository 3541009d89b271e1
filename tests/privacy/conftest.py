import pytest

from conversations import services
from identity.services import customer_resolve
from tests.admin_setup import staff_for


@pytest.fixture
def patient_row(tenant):
    """An SMS interaction of a patient with a name, a phone, an email and something said."""
    customer = customer_resolve(tenant=tenant, phone="+14155550123", email="zelda.quux@example.org").customer
    customer.display_name = "Zelda Quux"
    customer.save(update_fields=["display_name"])
    row, _ = services.session_open(tenant=tenant, customer=customer, channel="sms")
    services.interaction_append_turn(interaction=row, role="customer", text="Zelda here, my knee hurts")
    return row


@pytest.fixture
def staff_client(tenant, django_user_model, client):
    user = staff_for(tenant, django_user_model, "nurse-ann")
    client.force_login(user)
    client.user = user
    return client
