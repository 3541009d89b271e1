"""Appointments reach each CRM as a meeting / event on the patient's contact: booked → created once, moved →
the same meeting updated, cancelled → marked, never with the reason for the visit. Against the vendors' stubs,
through the real signal → outbox → delivery path."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from conversations.appointments import appointment_book, appointment_cancel, appointment_reschedule
from conversations.models import Appointment
from crm.models import CrmDelivery, CrmRecordMap
from crm.services import _claim, crm_delivery_attempt
from identity.models import AuditEvent
from tests.broker import take_queued
from tests.clock import local, next_weekday
from tests.crm.records import connect, patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks, empty_queue):
    """Run on-commit work (the appointment signal, then the outbox rows' queueing) as the real commit would."""

    def run(change, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return change(*args, **kwargs)

    return run


def book(on_commit, tenant, customer, hour=10, **extra) -> Appointment:
    starts = local(tenant, next_weekday(tenant, 2), hour)
    return on_commit(appointment_book, tenant=tenant, customer=customer, starts_at=starts, booked_via="sms", **extra)


def utc(moment) -> str:
    return moment.astimezone(UTC).isoformat()


def deliver_pending(now=None) -> list[str]:
    """Attempt every pending delivery once, oldest first (what the queued tasks do)."""
    pending = CrmDelivery.objects.filter(status="pending").order_by("pk").values_list("pk", flat=True)
    return [crm_delivery_attempt(delivery_id=pk, now=now) for pk in list(pending)]


def test_hubspot_booked_moved_cancelled_is_one_meeting_on_the_contact(tenant, hubspot, on_commit):
    connect(tenant, "hubspot")
    ines = patient(tenant)
    ines.visit_reason = "dolor de muela y fiebre desde el lunes"  # encrypted intake answer: must not leave
    ines.save(update_fields=["visit_reason"])
    appointment = book(on_commit, tenant, ines)
    assert ("crm.tasks.crm_deliver", [CrmDelivery.objects.get().pk]) in take_queued()
    assert deliver_pending() == ["succeeded"]

    (contact_id,) = hubspot.objects["contacts"]
    ((meeting_id, props),) = hubspot.objects["meetings"].items()
    assert hubspot.associations == [("meetings", meeting_id, contact_id, 200)]
    assert props["hs_meeting_title"] == "Appointment" and props["hs_meeting_outcome"] == "SCHEDULED"
    assert props["hs_meeting_start_time"] == utc(appointment.starts_at)
    assert f"/admin/conversations/appointment/{appointment.pk}/change/" in props["hs_meeting_body"]

    moved = on_commit(
        appointment_reschedule, appointment=appointment, starts_at=appointment.starts_at + timedelta(hours=5)
    )
    assert deliver_pending() == ["succeeded"]
    assert list(hubspot.objects["meetings"]) == [meeting_id]  # updated, not a second meeting
    assert props["hs_meeting_outcome"] == "RESCHEDULED"
    assert props["hs_meeting_start_time"] == utc(moved.starts_at)

    on_commit(appointment_cancel, appointment=moved)
    assert deliver_pending() == ["succeeded"]
    assert list(hubspot.objects["meetings"]) == [meeting_id] and props["hs_meeting_outcome"] == "CANCELED"
    assert len(hubspot.objects["contacts"]) == 1
    assert CrmDelivery.objects.filter(appointment=appointment).count() == 3  # one per version
    for request in hubspot.requests:
        assert "muela" not in request["raw"].decode() and "fiebre" not in request["raw"].decode()
    audits = AuditEvent.objects.filter(action="crm.export", object_type="conversations.appointment")
    assert audits.filter(object_id=str(appointment.pk), customer_id=ines.pk).count() == 3


def test_salesforce_event_on_the_contact_and_a_cancel_frees_the_slot(tenant, salesforce, on_commit):
    connect(tenant, "salesforce", instance_url=salesforce.base)
    appointment = book(on_commit, tenant, patient(tenant), resource="Dr. Okafor")
    assert deliver_pending() == ["succeeded"]
    ((contact_id, _),) = salesforce.objects["Contact"].items()
    ((event_id, event),) = salesforce.objects["Event"].items()
    assert event["WhoId"] == contact_id and event["Subject"] == "Appointment — Dr. Okafor"
    assert event["ShowAs"] == "Busy" and event["StartDateTime"] == utc(appointment.starts_at)

    on_commit(appointment_cancel, appointment=appointment)
    assert deliver_pending() == ["succeeded"]
    assert list(salesforce.objects["Event"]) == [event_id]
    assert event["Subject"] == "Cancelled: Appointment — Dr. Okafor" and event["ShowAs"] == "Free"


def test_zoho_event_is_created_once_and_moved(tenant, zoho, on_commit):
    connect(tenant, "zoho", instance_url=zoho.base)
    appointment = book(on_commit, tenant, patient(tenant, name="Chloé O’Brien"), hour=9)
    assert deliver_pending() == ["succeeded"]
    ((contact_id, _),) = zoho.objects["Contacts"].items()
    ((event_id, event),) = zoho.objects["Events"].items()
    assert event["Who_Id"] == {"id": contact_id} and event["Event_Title"] == "Appointment"

    moved = on_commit(
        appointment_reschedule, appointment=appointment, starts_at=appointment.starts_at + timedelta(hours=2)
    )
    assert deliver_pending() == ["succeeded"]
    assert list(zoho.objects["Events"]) == [event_id]
    assert event["Start_DateTime"] == utc(moved.starts_at.replace(microsecond=0))


def test_a_429_then_success_and_a_retried_task_write_one_meeting(tenant, hubspot, on_commit):
    connect(tenant, "hubspot")
    book(on_commit, tenant, patient(tenant))
    hubspot.fail_next(
        "POST",
        r"/meetings$",
        429,
        {"status": "error", "message": "You have reached your secondly limit.", "category": "RATE_LIMITS"},
        {"Retry-After": "3"},
    )
    (delivery,) = CrmDelivery.objects.all()
    assert crm_delivery_attempt(delivery_id=delivery.pk) == "retrying"
    later = timezone.now() + timedelta(minutes=5)
    assert crm_delivery_attempt(delivery_id=delivery.pk, now=later) == "succeeded"
    assert crm_delivery_attempt(delivery_id=delivery.pk, now=later) == "skipped"  # the task delivered twice
    CrmDelivery.objects.filter(pk=delivery.pk).update(status="pending", next_attempt_at=later)  # a replay
    assert crm_delivery_attempt(delivery_id=delivery.pk, now=later) == "succeeded"
    assert len(hubspot.objects["meetings"]) == 1
    assert len(hubspot.calls("POST", r"/meetings$")) == 2 and len(hubspot.calls("PATCH", r"/meetings/")) == 1


def test_two_changes_of_one_appointment_never_run_at_once(tenant, hubspot, on_commit):
    """The second version's claim waits while the first holds its lease, so both cannot create a meeting."""
    connect(tenant, "hubspot")
    appointment = book(on_commit, tenant, patient(tenant))
    on_commit(appointment_reschedule, appointment=appointment, starts_at=appointment.starts_at + timedelta(hours=1))
    first, second = CrmDelivery.objects.order_by("pk")
    now = timezone.now()
    assert _claim(first.pk, now) is not None  # a worker is sending version 1 (lease held, no lock)
    assert _claim(second.pk, now) is None  # version 2 waits …
    second.refresh_from_db()
    assert second.attempts == 0 and second.next_attempt_at > now
    assert crm_delivery_attempt(delivery_id=second.pk, now=second.next_attempt_at) == "skipped"  # still leased
    CrmDelivery.objects.filter(pk=first.pk).update(lease_expires_at=now)  # … until version 1 is done
    second.refresh_from_db()
    assert crm_delivery_attempt(delivery_id=second.pk, now=second.next_attempt_at) == "succeeded"


def test_a_meeting_deleted_in_the_crm_is_created_again(tenant, hubspot, on_commit):
    connect(tenant, "hubspot")
    appointment = book(on_commit, tenant, patient(tenant))
    deliver_pending()
    hubspot.objects["meetings"].clear()
    on_commit(appointment_cancel, appointment=appointment)
    assert deliver_pending() == ["succeeded"]
    ((meeting_id, props),) = hubspot.objects["meetings"].items()
    assert props["hs_meeting_outcome"] == "CANCELED"
    assert CrmRecordMap.objects.get(kind="appointment", local_id=appointment.pk).remote_id == meeting_id


def test_no_connection_no_rows_and_other_tenants_untouched(tenant, other_tenant, hubspot, on_commit):
    connect(other_tenant, "hubspot")
    book(on_commit, tenant, patient(tenant))
    assert not CrmDelivery.objects.exists() and not hubspot.requests


def test_a_no_show_marks_the_meeting_and_texts_nobody(tenant, hubspot, on_commit):
    from conversations.reminders.models import ReminderSettings
    from conversations.reminders.services import no_show_sweep

    connect(tenant, "hubspot")
    ReminderSettings.objects.create(tenant=tenant)
    start = timezone.now() - timedelta(minutes=50)
    missed = Appointment.objects.create(
        tenant=tenant, customer=patient(tenant), starts_at=start, ends_at=start + timedelta(minutes=30)
    )  # booked before the CRM was connected: the no-show creates its meeting
    assert on_commit(no_show_sweep) == 1
    assert [name for name, _ in take_queued()] == ["crm.tasks.crm_deliver"]  # no confirmation to the patient
    assert deliver_pending() == ["succeeded"]
    ((_, props),) = hubspot.objects["meetings"].items()
    assert props["hs_meeting_outcome"] == "NO_SHOW"
    missed.refresh_from_db()
    assert missed.status == "no_show" and missed.version == 2


def test_backfill_sends_appointments_of_the_window_once(tenant, hubspot, on_commit):
    from crm.services import crm_backfill

    ines = patient(tenant)
    old = book(on_commit, tenant, ines, hour=9)
    recent = book(on_commit, tenant, ines, hour=11)
    Appointment.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=20))
    connection = connect(tenant, "hubspot")  # connected after both were booked: nothing queued yet
    assert not CrmDelivery.objects.exists()
    assert crm_backfill(connection=connection, days=7) == 1
    assert crm_backfill(connection=connection, days=7) == 0  # a second backfill adds nothing
    assert CrmDelivery.objects.get().appointment_id == recent.pk
    assert deliver_pending() == ["succeeded"] and len(hubspot.objects["meetings"]) == 1


def _no_reason_leaves(stub, *words):
    for request in stub.requests:
        body = request["raw"].decode()
        assert not any(word in body for word in words), body


def test_salesforce_and_zoho_events_carry_no_reason_for_the_visit(tenant, salesforce, zoho, on_commit):
    connect(tenant, "salesforce", instance_url=salesforce.base)
    connect(tenant, "zoho", instance_url=zoho.base)
    ines = patient(tenant)
    ines.visit_reason = "me duele la muela, creo q es una infeccion"  # how patients type it: no accents, "q"
    ines.save(update_fields=["visit_reason"])
    appointment = book(on_commit, tenant, ines)
    on_commit(appointment_cancel, appointment=appointment)
    assert deliver_pending() == ["succeeded"] * 4  # two versions × two CRMs
    assert salesforce.objects["Event"] and zoho.objects["Events"]
    _no_reason_leaves(salesforce, "muela", "infeccion")
    _no_reason_leaves(zoho, "muela", "infeccion")


def test_a_clinic_that_allows_the_reason_gets_it_in_the_description_only(tenant, hubspot, on_commit):
    connect(tenant, "hubspot", appointment_reason=True)
    ines = patient(tenant)
    ines.visit_reason = "  I’ve had a toothache\nsince Monday <3 days>  "
    ines.save(update_fields=["visit_reason"])
    book(on_commit, tenant, ines)
    assert deliver_pending() == ["succeeded"]
    ((_, props),) = hubspot.objects["meetings"].items()
    assert "<br>Reason for visit: I’ve had a toothache since Monday &lt;3 days&gt;<br>" in props["hs_meeting_body"]
    assert props["hs_meeting_title"] == "Appointment"
    (audit,) = AuditEvent.objects.filter(action="crm.export", object_type="conversations.appointment")
    assert audit.details["visit_reason"] is True  # the export record says the reason left


def test_a_connection_with_appointments_switched_off_gets_no_meetings(tenant, hubspot, zoho, on_commit):
    connect(tenant, "hubspot", sync_appointments=False)
    connect(tenant, "zoho", instance_url=zoho.base)
    book(on_commit, tenant, patient(tenant))
    (delivery,) = CrmDelivery.objects.all()
    assert delivery.connection.provider == "zoho"
    assert deliver_pending() == ["succeeded"]
    assert not hubspot.requests and len(zoho.objects["Events"]) == 1


def test_backfill_skips_appointments_when_the_connection_does_not_sync_them(tenant, hubspot, on_commit):
    from crm.services import crm_backfill

    book(on_commit, tenant, patient(tenant, name="Mike O’Neil"))
    connection = connect(tenant, "hubspot", sync_appointments=False)
    assert crm_backfill(connection=connection, days=7) == 0
    assert not CrmDelivery.objects.exists()


def test_zoho_expired_token_during_a_move_is_refreshed_and_the_same_event_updated(tenant, zoho, on_commit):
    connect(tenant, "zoho", instance_url=zoho.base)
    appointment = book(on_commit, tenant, patient(tenant, name="José"))
    assert deliver_pending() == ["succeeded"]
    (event_id,) = zoho.objects["Events"]
    zoho.valid_tokens = {"at-expired-elsewhere"}  # Zoho expired our access token early (it does after ~1 h)
    on_commit(appointment_reschedule, appointment=appointment, starts_at=appointment.starts_at + timedelta(days=1))
    zoho.fail_next(
        "PUT",
        r"/Events/",
        429,
        {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "too many requests", "status": "error"},
        {"Retry-After": "2"},
    )
    (pending,) = CrmDelivery.objects.filter(status="pending")
    assert crm_delivery_attempt(delivery_id=pending.pk) == "retrying"  # 401 → refreshed → the PUT got a 429
    later = timezone.now() + timedelta(minutes=5)
    assert deliver_pending(now=later) == ["succeeded"]
    assert len(zoho.calls("POST", r"/oauth/v2/token$")) == 1
    assert list(zoho.objects["Events"]) == [event_id] and len(zoho.calls("POST", r"/crm/v8/Events$")) == 1
    assert zoho.objects["Events"][event_id]["Start_DateTime"].startswith(
        (appointment.starts_at + timedelta(days=1)).astimezone(UTC).date().isoformat()
    )


def test_a_change_queued_before_appointments_were_switched_off_is_not_sent(tenant, hubspot, on_commit):
    connection = connect(tenant, "hubspot")
    book(on_commit, tenant, patient(tenant))
    connection.sync_appointments = False
    connection.save(update_fields=["sync_appointments"])
    assert deliver_pending() == ["failed"]
    assert not hubspot.requests
    assert "switched off" in CrmDelivery.objects.get().last_error


def test_salesforce_request_limit_then_a_replayed_task_keeps_one_event(tenant, salesforce, on_commit):
    connect(tenant, "salesforce", instance_url=salesforce.base)
    appointment = book(on_commit, tenant, patient(tenant, name="Nguyễn Thị Lan"))
    salesforce.fail_next(
        "POST",
        r"/sobjects/Event",
        403,
        [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
    )
    (delivery,) = CrmDelivery.objects.all()
    t0 = timezone.now()
    assert crm_delivery_attempt(delivery_id=delivery.pk, now=t0) == "retrying"
    assert not salesforce.objects["Event"]
    later = t0 + timedelta(minutes=1)
    assert crm_delivery_attempt(delivery_id=delivery.pk, now=later) == "succeeded"
    CrmDelivery.objects.filter(pk=delivery.pk).update(status="pending", next_attempt_at=later)  # a replay
    assert crm_delivery_attempt(delivery_id=delivery.pk, now=later) == "succeeded"
    ((event_id, event),) = salesforce.objects["Event"].items()
    assert event["EndDateTime"] == utc(appointment.ends_at)
    assert len(salesforce.calls("POST", r"/sobjects/Event")) == 2  # the refused one and the one that wrote
    assert len(salesforce.calls("PATCH", rf"/sobjects/Event/{event_id}")) == 1
