"""Recording a send, a status callback or a machine answer locks the attempt row, never its Responder (admins
editing a responder, or another incident paging the same person, must not queue behind a status callback).
A second connection probes the rows with ``FOR UPDATE NOWAIT`` while the service's transaction is held open."""

from __future__ import annotations

import threading

import pytest
from django.db import OperationalError, connections, transaction

from escalation import services
from escalation.models import NotificationAttempt, Responder
from tests.escalation.steps import raise_and_fire

pytestmark = pytest.mark.django_db(transaction=True)


def probe(model, pk) -> str:
    """``"locked"`` if another transaction holds a row lock on ``model`` row ``pk``, else ``"free"``."""
    result: list[str] = []

    def run():
        try:
            with transaction.atomic():
                list(model.objects.select_for_update(nowait=True).filter(pk=pk))
            result.append("free")
        except OperationalError:  # 55P03 lock_not_available
            result.append("locked")
        finally:
            connections.close_all()  # this thread's own connection

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0]


def test_attempt_writes_lock_the_attempt_not_the_responder(oncall, patient_interaction, twilio_stub):
    incident, outcome = raise_and_fire(patient_interaction)
    voice = next(o for o in outcome.outbound if o.attempt.channel == "voice")
    call = voice.attempt
    writes = [
        lambda: services.attempt_deliver(outbound=voice),  # records the SID
        lambda: services.attempt_status_update(
            attempt=call, provider_status="in-progress", sid=NotificationAttempt.objects.get(pk=call.pk).provider_sid
        ),
        lambda: services.attempt_answered_by_machine(attempt=call, answered_by="machine_start"),
    ]
    for write in writes:
        with transaction.atomic():  # keep the service's row locks until the probes looked
            write()
            assert probe(NotificationAttempt, call.pk) == "locked"  # the probe does see the service's lock
            assert probe(Responder, call.responder_id) == "free"
    call.refresh_from_db()
    assert (call.status, call.error_code) == ("failed", "answering-machine")
