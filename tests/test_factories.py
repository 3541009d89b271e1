"""The factories build rows the models accept: every field validates and related rows share one tenant."""

import pytest

from tests import factories

pytestmark = pytest.mark.django_db

FACTORIES = [
    factories.TenantFactory,
    factories.PhoneNumberFactory,
    factories.CustomerFactory,
    factories.IdentifierFactory,
    factories.ConversationFactory,
    factories.InteractionFactory,
    factories.AppointmentFactory,
    factories.WebhookEndpointFactory,
    factories.ResponderFactory,
    factories.EscalationPolicyFactory,
    factories.EscalationStepFactory,
]


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_factory_rows_pass_model_validation(factory):
    row = factory()
    row.full_clean()


def test_an_escalation_step_pages_a_responder_of_its_own_clinic():
    step = factories.EscalationStepFactory()
    assert step.responder.tenant_id == step.policy.tenant_id


def test_an_appointment_belongs_to_its_patients_clinic_and_lasts_half_an_hour():
    appointment = factories.AppointmentFactory()
    assert appointment.tenant_id == appointment.customer.tenant_id
    assert (appointment.ends_at - appointment.starts_at).total_seconds() == 1800
