"""Concurrent bookings of one slot: the exclusion constraint lets one win; every other attempt is a clean
"taken" (with alternatives), never a deadlock error that would make the agent answer "sorry"."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from conversations.appointments import BookingError, appointment_book
from conversations.models import Appointment
from identity.services import customer_resolve
from tests.clock import local, next_weekday

pytestmark = pytest.mark.django_db(transaction=True)


def test_20_parallel_bookings_of_one_slot_give_one_booking_and_19_taken(tenant):
    customers = [customer_resolve(tenant=tenant, phone=f"+1555123{i:04d}").customer for i in range(20)]
    starts_at = local(tenant, next_weekday(tenant, 2), 10)
    barrier = threading.Barrier(len(customers))
    outcomes: list[str] = []

    def book(customer):
        try:
            barrier.wait(timeout=30)
            appointment_book(tenant=tenant, customer=customer, starts_at=starts_at, booked_via="sms")
            outcomes.append("booked")
        except BookingError as exc:
            outcomes.append(exc.code)
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            outcomes.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=book, args=(c,)) for c in customers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["booked"] + ["taken"] * 19, outcomes
    assert Appointment.objects.filter(tenant=tenant, starts_at=starts_at).count() == 1


def test_20_parallel_sms_bookings_with_their_confirmations_never_deadlock(tenant, monkeypatch, caplog):
    """20 patients text a booking at once; each reply runs in its own thread and each booking's confirmation SMS
    runs in yet another, concurrently with the rest of that reply (as the confirmation task does on a worker).
    The reply appends turns to the SMS exchange while the confirmation opens/uses the same exchange: the two
    must take the conversation and exchange locks in the same order, or one of them dies in a deadlock and the
    patient gets "confirmed" and then "sorry, we couldn't answer"."""
    from channels_app import receivers
    from channels_app.confirmations import appointment_send_confirmation
    from channels_app.sms.replies import sms_reply
    from channels_app.sms.services import sms_receive
    from channels_app.twilio_payloads import inbound_sms
    from conversations.models import ChannelMessage

    confirmations: list[threading.Thread] = []
    failures: list[str] = []

    def confirm_in_a_thread(appointment_id, change, version):
        def run():
            try:
                appointment_send_confirmation(appointment_id=appointment_id, change=change, version=version)
            except Exception as exc:  # noqa: BLE001 - what the test looks for
                failures.append(f"confirmation: {type(exc).__name__}: {exc}")
            finally:
                connection.close()

        thread = threading.Thread(target=run)
        confirmations.append(thread)
        thread.start()

    monkeypatch.setattr(receivers.appointment_confirm_task, "delay", confirm_in_a_thread)
    monkeypatch.setattr("channels_app.tasks.sms_reply.delay", lambda *a, **k: None)  # the test runs the replies
    times = [
        f"{h}:{m}{'am' if h24 < 12 else 'pm'}" for h24 in range(9, 17) for m in ("00", "30") for h in [h24 % 12 or 12]
    ]
    slots = times + ["10:00am"] * 4  # 16 free slots, and four more patients who want a taken one
    inbound_ids = []
    for i, slot in enumerate(slots):
        params = inbound_sms(
            account_sid=tenant.twilio_account_sid,
            from_=f"+1555123{i:04d}",
            to="+15550100001",
            body=f"Can I book an appointment tuesday at {slot}?",
        )
        inbound_ids.append(sms_receive(tenant=tenant, params=params).message.pk)
    barrier = threading.Barrier(len(inbound_ids))

    def reply(inbound_id):
        try:
            barrier.wait(timeout=30)
            sms_reply(inbound_id=inbound_id)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"reply: {type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=reply, args=(i,)) for i in inbound_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for t in list(confirmations):
        t.join(120)
    replies = list(ChannelMessage.objects.filter(idempotency_key__startswith="reply:").values_list("body", flat=True))
    assert failures == []
    assert len(replies) == 20 and not [r for r in replies if "sorry, we couldn't answer" in r], replies
    assert "deadlock" not in caplog.text.lower()
    assert Appointment.objects.filter(tenant=tenant).count() == 16
    confirmed = ChannelMessage.objects.filter(idempotency_key__startswith="appointment:").count()
    assert confirmed == 16
