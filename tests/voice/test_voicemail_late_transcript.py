"""A Twilio transcription that arrives after its voicemail was filed without one (status ``missing``) reaches
everything downstream: the row is enriched again (the enrichment task the close queues, on the real broker),
``interaction.enriched`` goes out with the transcript, ``conversation.closed`` (sent already, with the empty
transcript) is not repeated, and the warehouse export takes the row again. The queued tasks are taken off
this run's Redis and their bodies run in this process."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.voice.voicemail import TWILIO_TRANSCRIPTION_GRACE, voicemail_file_untranscribed, voicemail_redrive
from conversations.models import Interaction
from conversations.services import conversation_close
from conversations.warehouse.export import SETTLE, read_back, warehouse_export_run
from conversations.webhooks import tasks as webhook_tasks
from conversations.webhooks.models import WebhookEndpoint, WebhookMessage
from enrichment.tasks import enrich_interaction
from tests.broker import take_queued
from tests.voice.voicemail_calls import leave_message, received_at, transcription

pytestmark = pytest.mark.django_db

BOOKING = "Hi, I'd like to book an appointment for next week, please call me back."
#: what the workers would run (``webhook_deliver`` is left out: delivery is not under test)
WORKER = {
    task.name: task
    for task in (
        enrich_interaction,
        webhook_tasks.webhook_interaction_enriched,
        webhook_tasks.webhook_conversation_closed,
    )
}


@pytest.fixture
def hooks(tenant):
    return WebhookEndpoint.objects.create(
        tenant=tenant,
        url="https://hooks.example.com/callsphere",
        events=["interaction.enriched", "conversation.closed"],
    )


def work(capture) -> list[tuple[str, list]]:
    """Run the queued enrichment and webhook-emit tasks (and what they queue in turn) until none is left;
    return the ``(task name, args)`` run, in order."""
    ran = []
    while batch := [(name, args) for name, args in take_queued() if name in WORKER]:
        for name, args in batch:
            with capture(execute=True):
                WORKER[name](*args)
            ran.append((name, args))
    return ran


def messages(event_type: str, interaction: Interaction | None = None) -> list[dict]:
    """Payloads (``data``) of the webhook messages of ``event_type``, oldest first (one interaction's only)."""
    rows = WebhookMessage.objects.filter(event_type=event_type).order_by("created_at", "pk")
    bodies = [m.payload["data"] for m in rows]
    return [b for b in bodies if interaction is None or b["id"] == str(interaction.pk)]


def test_a_late_transcript_is_enriched_again_and_sent_out_without_a_second_conversation_closed(
    phone, tenant, hooks, empty_queue, tmp_path, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    leave_message(phone, tenant)  # Twilio transcribes; its callback is late
    assert voicemail_redrive(now=received_at(phone) + TWILIO_TRANSCRIPTION_GRACE + timedelta(seconds=1)) == 1
    [(_, args)] = take_queued()
    with capture(execute=True):
        voicemail = voicemail_file_untranscribed(
            call_message_id=args[0], recording_sid=args[1], recording_url=args[2], duration_seconds=args[3]
        )
        conversation_close(conversation=voicemail.conversation)  # the conversation ends, the call row with it
    assert (enrich_interaction.name, [str(voicemail.pk)]) in work(capture)
    [closed] = messages("conversation.closed")  # out already, with the empty transcript
    [filed] = [i for i in closed["interactions"] if i["id"] == str(voicemail.pk)]
    assert [t["text"] for t in filed["transcript"]] == [""]
    assert [e["transcript"][-1]["text"] for e in messages("interaction.enriched", voicemail)] == [""]
    lake = str(tmp_path / "lake")
    first = warehouse_export_run(destination=lake, now=timezone.now() + SETTLE + timedelta(seconds=1))
    assert str(voicemail.pk) in {r["id"] for f in first["files"] for r in read_back(f)}
    voicemail.refresh_from_db()
    before = voicemail.updated_at, voicemail.enriched_at

    with capture(execute=True):
        assert transcription(phone, tenant, BOOKING).status_code == 204  # Twilio's, late
    ran = work(capture)
    assert ran[:1] == [(enrich_interaction.name, [str(voicemail.pk)])]  # the close's enrichment, once more

    voicemail.refresh_from_db()
    assert voicemail.updated_at > before[0] and voicemail.enriched_at > before[1]
    assert voicemail.intent == "book_appointment"  # scored on the transcript, no longer on silence
    enriched = messages("interaction.enriched", voicemail)
    assert len(enriched) == 2 and [t["text"] for t in enriched[-1]["transcript"]] == ["", BOOKING]
    assert enriched[-1]["intent"] == "book_appointment"
    assert len(messages("conversation.closed")) == 1  # one per conversation: not sent again
    again = warehouse_export_run(destination=lake, now=timezone.now() + SETTLE + timedelta(seconds=1))
    [row] = [r for f in again["files"] for r in read_back(f) if r["id"] == str(voicemail.pk)]
    assert [t["text"] for t in row["transcript"]] == ["", BOOKING] and row["intent"] == "book_appointment"


def test_a_transcript_for_a_voicemail_not_waiting_for_one_queues_no_enrichment(
    phone, tenant, empty_queue, django_capture_on_commit_callbacks
):
    leave_message(phone, tenant)
    with django_capture_on_commit_callbacks(execute=True):
        transcription(phone, tenant, BOOKING)  # on time: filed with it, closed, enriched once
    voicemail = Interaction.objects.get(channel="voicemail")
    assert take_queued().count((enrich_interaction.name, [str(voicemail.pk)])) == 1
    with django_capture_on_commit_callbacks(execute=True):
        transcription(phone, tenant, BOOKING)  # Twilio's retry: a duplicate
    assert (enrich_interaction.name, [str(voicemail.pk)]) not in take_queued()
    voicemail.refresh_from_db()
    assert [t["text"] for t in voicemail.transcript] == [BOOKING]
