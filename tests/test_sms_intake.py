"""The SMS webhook accepts fast and records on a worker (channels_app.sms.intake): one row per MessageSid,
emergencies on the escalation lane, nothing half-written when the intake fails, a lost task re-queued, a message
that never records quarantined (with real workers: tests/escalation/test_sms_lane.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app import twilio_payloads
from channels_app.models import InboundSms
from channels_app.sms import intake
from conversations.models import ChannelMessage, Interaction
from tests.broker import take_queued


@pytest.fixture(autouse=True)
def queued(settings):
    settings.SMS_INTAKE_INLINE = False  # what production runs
    take_queued("escalation")  # earlier tests' escalation tasks are not this test's (empty_queue: the default one)
    yield
    take_queued("escalation")


def sms(tenant, body: str, *, sid: str | None = None, phone: str = "+15551230077", to: str = "+15550100001"):
    return twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid, from_=phone, to=to, body=body, message_sid=sid
    )


def accept(twilio_post, tenant, params, capture) -> int:
    with capture(execute=True):
        return twilio_post("/twilio/sms/", params, tenant=tenant).status_code


@pytest.mark.django_db
def test_the_webhook_stores_the_text_once_and_queues_its_intake(
    tenant, twilio_post, empty_queue, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    params = sms(tenant, "hiya can i come in thurs afternoon? 🙏")

    with django_assert_max_num_queries(6):  # statement timeout, tenant, responder claim, insert, reset
        assert accept(twilio_post, tenant, params, django_capture_on_commit_callbacks) == 200
    assert accept(twilio_post, tenant, params, django_capture_on_commit_callbacks) == 200  # Twilio's retry

    row = InboundSms.objects.get()
    assert (row.message_sid, row.lane, row.status) == (params["MessageSid"], "celery", "pending")
    assert not ChannelMessage.objects.exists()  # nothing recorded in the request
    assert take_queued("celery") == [("channels_app.tasks.sms_intake", [row.pk])]
    assert take_queued("escalation") == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        "my husband just collapsed and he’s not breathing right",
        "mi mamá tiene la cara chueca y no puede hablar bien",
        "took like 30 of my sleeping pills an hour ago",
    ],
)
def test_an_emergency_takes_the_escalation_lane(
    tenant, twilio_post, empty_queue, django_capture_on_commit_callbacks, body
):
    assert accept(twilio_post, tenant, sms(tenant, body), django_capture_on_commit_callbacks) == 200

    row = InboundSms.objects.get()
    assert row.lane == "escalation"
    assert take_queued("escalation") == [("channels_app.tasks.sms_intake", [row.pk])]
    assert take_queued("celery") == []


@pytest.mark.django_db
def test_a_bad_request_is_refused_before_anything_is_stored(tenant, twilio_post, django_capture_on_commit_callbacks):
    params = sms(tenant, "hello")
    params["From"] = "not a phone"

    assert accept(twilio_post, tenant, params, django_capture_on_commit_callbacks) == 400
    assert not InboundSms.objects.exists()


@pytest.mark.django_db
def test_the_intake_records_the_text_deletes_the_row_and_queues_the_reply(
    tenant, twilio_post, empty_queue, django_capture_on_commit_callbacks
):
    accept(twilio_post, tenant, sms(tenant, "can u move my appt to friday"), django_capture_on_commit_callbacks)
    row = InboundSms.objects.get()
    take_queued("celery")

    with django_capture_on_commit_callbacks(execute=True):
        received = intake.sms_intake(inbound_id=row.pk)
    assert intake.sms_intake(inbound_id=row.pk) is None  # a redelivered task does nothing

    message = ChannelMessage.objects.get()
    assert received.message == message and message.body == "can u move my appt to friday"
    assert not InboundSms.objects.exists()
    assert take_queued("celery") == [("channels_app.tasks.sms_reply", [message.pk])]


@pytest.mark.django_db
def test_a_failing_intake_writes_nothing_and_is_quarantined_after_its_attempts(
    tenant, twilio_post, empty_queue, django_capture_on_commit_callbacks, monkeypatch
):
    accept(twilio_post, tenant, sms(tenant, "need a refill on my inhaler pls"), django_capture_on_commit_callbacks)
    row = InboundSms.objects.get()

    record = intake.sms_record

    def broken(**kwargs):
        record(**kwargs)  # the message and its turn are written…
        raise RuntimeError("the database went away mid-intake")  # …then the intake dies

    monkeypatch.setattr(intake, "sms_record", broken)
    for attempt in range(1, intake.MAX_ATTEMPTS + 1):
        assert intake.sms_intake(inbound_id=row.pk) is None
        row.refresh_from_db()
        assert row.attempts == attempt and row.last_error == "RuntimeError"
    assert row.status == InboundSms.Status.QUARANTINED and row.queued_at is None
    assert not ChannelMessage.objects.exists() and not Interaction.objects.exists()  # each attempt rolled back whole
    assert intake.sms_intake(inbound_id=row.pk) is None  # a quarantined row is left to staff


@pytest.mark.django_db
def test_the_redrive_queues_what_is_not_on_its_way_and_leaves_a_backlog_alone(
    tenant, twilio_post, empty_queue, django_capture_on_commit_callbacks
):
    for body in ("he’s got a knife and says he’ll hurt me", "what time do u open sat", "pls cancel tmrw 9am"):
        accept(twilio_post, tenant, sms(tenant, body), django_capture_on_commit_callbacks)
    take_queued("celery"), take_queued("escalation")
    urgent, routine, waiting = InboundSms.objects.order_by("-lane", "id")
    assert (urgent.lane, routine.lane, waiting.lane) == ("escalation", "celery", "celery")
    InboundSms.objects.filter(pk__in=[urgent.pk, routine.pk]).update(queued_at=None)  # the broker was down

    assert intake.sms_intake_redrive() == 0  # too young: the broker may be back for the next run
    in_a_minute = timezone.now() + timedelta(minutes=1)
    assert intake.sms_intake_redrive(now=in_a_minute) == 2  # the third is queued, waiting in a backlog
    assert take_queued("escalation") == [("channels_app.tasks.sms_intake", [urgent.pk])]
    assert take_queued("celery") == [("channels_app.tasks.sms_intake", [routine.pk])]
    assert intake.sms_intake_redrive(now=in_a_minute) == 0  # queued now: not twice
    assert not InboundSms.objects.filter(status="quarantined").exists()

    later = timezone.now() + intake.REQUEUE_AFTER + timedelta(minutes=1)  # a task lost with its worker
    assert intake.sms_intake_redrive(now=later) == 3
    take_queued("celery"), take_queued("escalation")
    assert intake.sms_intake_redrive(now=timezone.now() + intake.STALE_AFTER + timedelta(minutes=1)) == 0
    assert set(InboundSms.objects.values_list("status", flat=True)) == {"quarantined"}


@pytest.mark.django_db
def test_a_broker_outage_at_accept_still_answers_twilio_and_the_redrive_catches_up(
    tenant, twilio_post, empty_queue, django_capture_on_commit_callbacks
):
    from tests.broker import broker_down

    with broker_down():
        assert (
            accept(twilio_post, tenant, sms(tenant, "hola, tienen cita el lunes?"), django_capture_on_commit_callbacks)
            == 200
        )
    row = InboundSms.objects.get()
    assert row.queued_at is None

    assert intake.sms_intake_redrive(now=timezone.now() + timedelta(minutes=1)) == 1
    assert take_queued("celery") == [("channels_app.tasks.sms_intake", [row.pk])]


@pytest.mark.django_db
def test_staff_see_their_clinics_quarantined_texts_and_can_record_them_again(
    tenant, other_tenant, client, django_user_model, empty_queue, django_capture_on_commit_callbacks
):
    from identity.models import TenantMembership
    from identity.roles import role_group

    mine = InboundSms.objects.create(
        tenant=tenant,
        message_sid="SM" + "a" * 32,
        params={"From": "+15551230099", "Body": "r u open xmas eve?"},
        status="quarantined",
        attempts=5,
        last_error="OperationalError",
        received_at=timezone.now(),
    )
    theirs = InboundSms.objects.create(
        tenant=other_tenant,
        message_sid="SM" + "b" * 32,
        params={"From": "+15551230098", "Body": "not yours"},
        status="quarantined",
        attempts=5,
        received_at=timezone.now(),
    )
    user = django_user_model.objects.create_user("desk", password="pw-not-used-7", is_staff=True)
    TenantMembership.objects.create(user=user, tenant=tenant, role=TenantMembership.Role.STAFF)
    user.groups.add(role_group(TenantMembership.Role.STAFF))
    client.force_login(user)

    page = client.get("/admin/channels_app/inboundsms/")
    assert page.status_code == 200
    assert "r u open xmas eve?" in page.content.decode() and "not yours" not in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/channels_app/inboundsms/",
            {"action": "record_again", "_selected_action": [mine.pk, theirs.pk]},  # a forged selection
        )
    mine.refresh_from_db()
    assert (mine.status, mine.attempts) == ("pending", 0)
    assert take_queued("celery") == [("channels_app.tasks.sms_intake", [mine.pk])]
    theirs.refresh_from_db()
    assert (theirs.status, theirs.attempts) == ("quarantined", 5)  # another clinic's text is never touched
