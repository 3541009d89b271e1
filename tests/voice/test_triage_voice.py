"""Triage on the phone and in voicemail: an emergency said in a turn gets the spoken safety line (911, never
the booking menu) and one escalation request; an emergency voicemail is escalated once and the caller, who
has hung up, is texted the safety reply in their language once."""

from __future__ import annotations

import pytest

from conversations.models import ChannelMessage, Interaction, TriageDecision
from tests.voice.phone import says
from tests.voice.voicemail_calls import leave_message, transcription


@pytest.mark.django_db
def test_a_caller_describing_a_stroke_hears_the_safety_line_not_the_booking_menu(
    phone, tenant, escalations, django_capture_on_commit_callbacks
):
    phone.answer()
    with django_capture_on_commit_callbacks(execute=True):
        document = phone.say("um my dad's mouth went all crooked and he's talking funny like he's drunk")
    spoken = " ".join(says(document))
    assert "911" in spoken and "book" not in spoken.lower()
    row = Interaction.objects.get(channel="voice")
    assert row.urgency == 5 and row.escalated
    assert [e["reason"] for e in escalations] == ["red flag: stroke"]
    assert TriageDecision.objects.get(interaction=row).codes == ["stroke"]


@pytest.mark.django_db
def test_an_emergency_voicemail_in_spanish_texts_the_caller_the_safety_reply_once(
    phone, tenant, escalations, django_capture_on_commit_callbacks
):
    leave_message(phone, tenant)
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            transcription(phone, tenant, "hola es Rosa, mi hijo se tomó un frasco entero de pastillas").status_code
            == 204
        )
        transcription(phone, tenant, "hola es Rosa, mi hijo se tomó un frasco entero de pastillas")  # a retry
    voicemail = Interaction.objects.get(channel="voicemail")
    assert voicemail.escalated and len(escalations) == 1
    texts = ChannelMessage.objects.filter(idempotency_key__startswith="voicemail-safety:")
    assert texts.count() == 1
    body = texts.get().body
    assert "1-800-222-1222" in body and "Llame" in body and "pastillas" not in body
