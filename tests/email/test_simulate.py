"""``manage.py simulate email --reply`` against a running server (daphne) and a real Celery worker."""

from __future__ import annotations

import io
import time

import pytest
from django.core.management import call_command

from channels_app.models import OutboundEmail
from conversations.appointments import appointment_book
from conversations.models import Appointment, Interaction
from conversations.services import session_open
from tests import processes
from tests.clock import local, next_weekday
from tests.email.conftest import PATIENT_EMAIL
from tests.processes import wait_for as _wait_for

SECRET = "sim:inbound-secret-123"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_simulate_email_reply_to_the_confirmation_moves_the_appointment(
    tenant, mailbox, patient, celery_worker, tmp_path, settings
):
    sms, _ = session_open(tenant=tenant, customer=patient, channel="sms")
    appointment = appointment_book(
        tenant=tenant,
        customer=patient,
        conversation=sms.conversation,
        booked_via="sms",
        starts_at=local(tenant, next_weekday(tenant, 2), 10),
    )  # next Wednesday
    # the worker sends the confirmation (SMS + email with .ics) from the appointment_changed signal
    _wait_for(lambda: OutboundEmail.objects.filter(kind="confirmation", channel_message__status="sent").first())

    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    server, base = processes.start_daphne(
        log_path=tmp_path / "daphne.log",
        ANYMAIL_WEBHOOK_SECRET=SECRET,
        EMAIL_TRUSTED_AUTHSERV_IDS=",".join(settings.EMAIL_TRUSTED_AUTHSERV_IDS),
    )
    out, yes = io.StringIO(), io.StringIO()

    def reply(body: str, stdout) -> None:
        call_command(
            "simulate",
            "--server",
            base,
            "--tenant",
            tenant.slug,
            "email",
            "--from",
            PATIENT_EMAIL,
            "--reply",
            "--body",
            body,
            "--wait",
            "40",
            stdout=stdout,
        )

    try:
        reply("Can you make it 3 PM?", out)  # the agent offers the move ...
        appointment.refresh_from_db()
        assert appointment.starts_at.astimezone(tenant.tzinfo).hour == 10, "moved before the patient said yes"
        reply("Yes please", yes)  # ... and makes it on the patient's yes
    finally:
        processes.stop(server)
    printed = out.getvalue()
    assert "POST /email/inbound/ → 200" in printed and '"status": "accepted"' in printed
    assert "reply (sent" in printed and "Shall I move it" in printed, printed
    assert "reply (sent" in yes.getvalue(), yes.getvalue()
    appointment.refresh_from_db()
    assert appointment.starts_at.astimezone(tenant.tzinfo).hour == 15
    assert appointment.status == Appointment.Status.BOOKED
    channels = set(Interaction.objects.filter(conversation=sms.conversation).values_list("channel", flat=True))
    assert {"sms", "email"} <= channels


@pytest.mark.django_db
def test_a_reply_waits_for_the_email_still_on_its_way_and_answers_it(tenant, mailbox, patient, monkeypatch):
    """The worker's mail backend can show an email before its row says ``sent``: a reply typed then answers
    that newest email (once it is recorded), not the one before it, and never fails with "no email sent"."""
    import types

    from django.core.management.base import CommandError

    from channels_app.email.outbound import email_to_patient
    from channels_app.simulate import email as simulate_email
    from conversations.models import ChannelMessage

    def send(key: str, body: str) -> OutboundEmail:
        email_to_patient(
            customer=patient,
            to=PATIENT_EMAIL,
            body=body,
            subject="Your appointment",
            kind="confirmation",
            idempotency_key=key,
        )  # delivery is queued on commit: the row stays pending
        return OutboundEmail.objects.get(channel_message__idempotency_key=key)

    with pytest.raises(CommandError, match="no email was sent"):
        simulate_email.build(tenant=tenant, sender=PATIENT_EMAIL, body="hi", subject="", reply=True, wait=0.3)

    older = send("conf-1", "Confirmed: Tuesday at 2:00 PM")
    ChannelMessage.objects.filter(pk=older.channel_message_id).update(status="sent")
    newest = send("conf-2", "Moved: Tuesday at 3:00 PM")
    naps = []

    def arrives_after_two_naps(seconds: float) -> None:  # the worker records the send meanwhile
        naps.append(seconds)
        if len(naps) == 2:
            ChannelMessage.objects.filter(pk=newest.channel_message_id).update(status="sent")

    monkeypatch.setattr(
        simulate_email, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=arrives_after_two_naps)
    )
    msg = simulate_email.build(
        tenant=tenant,
        sender="Jane.Doe@example.com".lower(),
        body="Can you make it 3 PM?",
        subject="",
        reply=True,
        wait=10,
    )
    assert len(naps) == 2
    assert msg["In-Reply-To"] == newest.message_id != older.message_id
    assert "> Moved: Tuesday at 3:00 PM" in msg.get_content()
