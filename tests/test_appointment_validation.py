"""Model validation of the no-double-booking constraint (what an admin form runs before saving): a free slot
validates, an overlapping booked slot on the same calendar is a validation error, another calendar is free."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from conversations.models import Appointment
from tests.factories import AppointmentFactory, CustomerFactory

pytestmark = pytest.mark.django_db


def test_a_free_slot_validates_and_an_overlap_on_the_same_calendar_does_not():
    first = AppointmentFactory()
    first.full_clean()
    overlapping = Appointment(
        tenant=first.tenant,
        customer=CustomerFactory(tenant=first.tenant),
        starts_at=first.starts_at + timedelta(minutes=15),
        ends_at=first.ends_at + timedelta(minutes=15),
    )
    with pytest.raises(ValidationError, match="appointment_no_double_booking"):
        overlapping.full_clean()
    overlapping.resource = "room-2"
    overlapping.full_clean()


def test_a_cancelled_appointment_leaves_its_slot_free():
    first = AppointmentFactory(status="cancelled")
    again = Appointment(tenant=first.tenant, customer=first.customer, starts_at=first.starts_at, ends_at=first.ends_at)
    again.full_clean()
