"""factory-boy factories for the core models."""

import factory
from django.utils import timezone

from conversations.models import Conversation, Interaction
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
