"""The brief's journey in one run, exactly as the README's walk-through types it (issue 15, item 8): a call
books "Tuesday at 2 PM" and asks for the chat link → the patient opens the texted link in the widget, gives an
email and proves it with the emailed code → the confirmation email goes out → the patient replies "Can you make
it 3 PM?" and then "Yes please" → one appointment, at 3 PM, and one conversation with voice, SMS, chat and email
rows. Every step is a ``manage.py simulate`` command against a real daphne (signed Twilio webhooks, the chat
websocket, ``POST /email/inbound/``) with a real Celery worker; the mail both processes send is read back from
Django's file backend (tests/mailfiles.py) — no service called and no state set by hand."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import datetime, time

import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations.models import Appointment, Interaction
from tests import processes
from tests.clock import next_weekdays_since
from tests.email.conftest import PATIENT_EMAIL, PATIENT_PHONE
from tests.mailfiles import email_url, sent_emails, text_of

SECRET = "journey:inbound-secret-123"
VISITOR = "journey-browser-0123456789"


@pytest.fixture
def stack(tenant, mailbox, tmp_path, settings):
    """daphne and a Celery worker sharing this test's database, Redis, inbound secret and a mail directory."""
    outbox = tmp_path / "sent-mail"
    outbox.mkdir()
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}  # what `simulate email` authenticates with, as the server does
    env = {
        "EMAIL_URL": email_url(outbox),
        "ANYMAIL_WEBHOOK_SECRET": SECRET,
        "EMAIL_TRUSTED_AUTHSERV_IDS": ",".join(settings.EMAIL_TRUSTED_AUTHSERV_IDS),
    }
    worker = processes.start_worker(log_path=tmp_path / "worker.log", purge=True, **env)
    try:
        server, base = processes.start_daphne(log_path=tmp_path / "daphne.log", **env)
    except BaseException:
        processes.stop(worker)
        raise
    yield base, outbox
    processes.stop(server)
    processes.stop(worker)


def simulate(base: str, tenant, *args: str) -> str:
    out = io.StringIO()
    call_command("simulate", "--server", base, "--tenant", tenant.slug, *args, stdout=out)
    return out.getvalue()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_call_then_chat_link_then_email_reply_moves_the_one_booking(tenant, stack):
    base, outbox = stack
    started = timezone.now()
    call = simulate(
        base,
        tenant,
        "call",
        "--from",
        PATIENT_PHONE,
        "--say",
        "Hi, I'd like to book an appointment for Tuesday at 2 PM",
        "--say",
        "Can you text me a link so I can continue in chat?",
        "--wait",
        "30",
    )
    appointment = Appointment.objects.get()
    day = appointment.starts_at.astimezone(tenant.tzinfo).date()
    assert day in next_weekdays_since(tenant, 1, started)
    assert appointment.starts_at == datetime.combine(day, time(14), tenant.tzinfo)
    token = re.search(r"texted to \S+: .*?/c/(\S+)", call).group(1)  # the link, as the patient's phone shows it

    hello = simulate(
        base, tenant, "chat", "--link", token, "--visitor", VISITOR, "--text", f"sure, my email is {PATIENT_EMAIL}"
    )
    assert "Tuesday" in hello  # "Welcome back! Your next appointment is on Tuesday…"
    [code_email] = processes.wait_for(lambda: [m for m in sent_emails(outbox) if "code" in m["Subject"].lower()])
    assert code_email["To"] == PATIENT_EMAIL
    code = re.search(r"\b(\d{6})\b", text_of(code_email)).group(1)
    proven = simulate(base, tenant, "chat", "--visitor", VISITOR, "--text", code)  # the same browser, later
    assert "your email address is confirmed" in proven.rsplit("→", 1)[1], proven

    def appointment_emails():
        return [m for m in sent_emails(outbox) if m["To"] == PATIENT_EMAIL and "code" not in m["Subject"].lower()]

    [confirmation] = processes.wait_for(appointment_emails)
    assert "2:00 PM" in text_of(confirmation)

    offer = simulate(base, tenant, "email", "--from", PATIENT_EMAIL, "--reply", "--body", "Can you make it 3 PM?")
    assert "POST /email/inbound/ → 200" in offer and "Shall I move it" in offer, offer
    appointment.refresh_from_db()
    assert appointment.starts_at.astimezone(tenant.tzinfo).hour == 14  # nothing moves before a yes
    yes = simulate(base, tenant, "email", "--from", PATIENT_EMAIL, "--reply", "--body", "Yes please", "--wait", "30")
    assert "reply (sent" in yes, yes

    [only] = Appointment.objects.all()
    assert only.status == "booked" and only.starts_at == datetime.combine(day, time(15), tenant.tzinfo)
    voice = Interaction.objects.get(channel="voice")
    channels = set(Interaction.objects.filter(conversation=voice.conversation).values_list("channel", flat=True))
    assert channels == {"voice", "sms", "chat", "email"}, channels
    processes.wait_for(lambda: any("3:00 PM" in text_of(m) for m in appointment_emails()))
    sent = sent_emails(outbox)
    assert len({m["Message-ID"] for m in sent}) == len(sent)
    twice = [k for k, n in Counter((m["To"], m["Subject"], text_of(m)) for m in sent).items() if n > 1]
    assert not twice, twice  # each email (code, confirmation, offer, reply, new time) went out once
