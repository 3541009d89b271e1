"""factory-boy factories: tenants, patients, conversations, appointments, webhooks, on-call."""

from datetime import timedelta

import factory
from django.utils import timezone

from conversations.models import Appointment, Conversation, Interaction
from conversations.webhooks.models import WebhookEndpoint
from escalation.models import EscalationPolicy, EscalationStep, Responder
from identity.models import Customer, CustomerIdentifier, Tenant, TenantPhoneNumber


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Clinic {n}")
    slug = factory.Sequence(lambda n: f"clinic-{n}")
    short_name = factory.Sequence(lambda n: f"Clinic{n}")
    timezone = "America/New_York"
    twilio_account_sid = factory.Sequence(lambda n: f"AC{n:032d}")
    twilio_auth_token = factory.Sequence(lambda n: f"token{n:027d}")
    allowed_widget_origins = factory.LazyFunction(lambda: ["https://clinic.example.com"])


class PhoneNumberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TenantPhoneNumber

    tenant = factory.SubFactory(TenantFactory)
    number = factory.Sequence(lambda n: f"+1555010{n:04d}")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    tenant = factory.SubFactory(TenantFactory)
    display_name = factory.Faker("name")


class IdentifierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerIdentifier

    customer = factory.SubFactory(CustomerFactory)
    tenant = factory.SelfAttribute("customer.tenant")
    kind = "phone"
    value = factory.Sequence(lambda n: f"+1555777{n:04d}")


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    customer = factory.SubFactory(CustomerFactory)
    tenant = factory.SelfAttribute("customer.tenant")
    opened_at = factory.LazyFunction(timezone.now)
    last_activity_at = factory.LazyFunction(timezone.now)


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    conversation = factory.SubFactory(ConversationFactory)
    customer = factory.SelfAttribute("conversation.customer")
    tenant = factory.SelfAttribute("conversation.tenant")
    channel = "sms"
    direction = "inbound"
    started_at = factory.LazyFunction(timezone.now)
    last_activity_at = factory.LazyFunction(timezone.now)


class AppointmentFactory(factory.django.DjangoModelFactory):
    """A booked 30-minute appointment tomorrow at 10:00 UTC on the ``main`` calendar."""

    class Meta:
        model = Appointment

    customer = factory.SubFactory(CustomerFactory)
    tenant = factory.SelfAttribute("customer.tenant")
    starts_at = factory.LazyFunction(
        lambda: (timezone.now() + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    )
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + timedelta(minutes=30))


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    """An active endpoint on a public https URL subscribed to ``conversation.closed`` (secret generated)."""

    class Meta:
        model = WebhookEndpoint

    tenant = factory.SubFactory(TenantFactory)
    url = factory.Sequence(lambda n: f"https://hooks.example.com/{n}")
    events = factory.LazyFunction(lambda: ["conversation.closed"])


class ResponderFactory(factory.django.DjangoModelFactory):
    """An on-call clinician reachable by SMS and voice (E.164 phone)."""

    class Meta:
        model = Responder

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Faker("name")
    phone = factory.Sequence(lambda n: f"+1555888{n:04d}")
    timezone = "America/New_York"


class EscalationPolicyFactory(factory.django.DjangoModelFactory):
    """A policy without steps; add :class:`EscalationStepFactory` rows."""

    class Meta:
        model = EscalationPolicy

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Policy {n}")


class EscalationStepFactory(factory.django.DjangoModelFactory):
    """A step paging one responder directly, waiting 60 s before the next step."""

    class Meta:
        model = EscalationStep

    policy = factory.SubFactory(EscalationPolicyFactory)
    order = factory.Sequence(lambda n: n)
    target = "responder"
    responder = factory.SubFactory(ResponderFactory, tenant=factory.SelfAttribute("..policy.tenant"))
    wait_seconds = 60
