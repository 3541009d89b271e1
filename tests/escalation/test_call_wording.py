"""What a page call says once its incident stopped paging: acknowledged by a colleague → nothing to do;
acknowledged by this responder → call back; the ladder ran out → nobody has acknowledged, call the clinic now
(a late "1" is no acknowledgement). Never a patient detail. Webhooks signed like Twilio's."""

from __future__ import annotations

from datetime import timedelta

import pytest

from escalation import services
from escalation.models import NotificationAttempt
from tests.escalation.conftest import PATIENT_DOB, PATIENT_NAME, SYMPTOM
from tests.escalation.steps import call_params, call_post

pytestmark = pytest.mark.django_db

#: The clinic's callback number (conftest CLINIC_NUMBER, +15550100001) as text-to-speech reads it.
SPOKEN_CALLBACK = b"1 5 5 5 0 1 0 0 0 0 1"


def prompt(client, call):
    return call_post(client, f"/twilio/escalation/call/{call.pk}/", call.tenant, call_params(call.tenant, call))


def press(client, call, digits="1"):
    return call_post(
        client,
        f"/twilio/escalation/call/{call.pk}/gather/?round=1",
        call.tenant,
        call_params(call.tenant, call, Digits=digits),
    )


def says(response) -> bytes:
    assert response.status_code == 200 and b"<Hangup" in response.content and b"<Gather" not in response.content
    for detail in (*PATIENT_NAME.split(), PATIENT_DOB, *SYMPTOM.split()):
        assert detail.encode() not in response.content
    return response.content


def test_after_a_colleague_acknowledged_no_action_is_asked(paged, client, oncall):
    incident, _ = paged
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    assert services.incident_acknowledge(incident=incident, responder=oncall["backup"], via="link")
    for response in (prompt(client, call), press(client, call), press(client, call, "2")):
        text = says(response)
        assert b"acknowledged by a colleague" in text and b"No action is needed" in text
        assert b"call" not in text.lower()  # never asked to call anyone back
    incident.refresh_from_db()
    assert incident.acknowledged_by == oncall["backup"]


def test_the_acknowledger_pressing_1_again_is_asked_to_call_back(paged, client):
    incident, _ = paged
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    first, again = press(client, call), press(client, call)  # e.g. Twilio retrying the Gather request
    for response in (first, again):
        assert b"Acknowledged. Thank you. Please call Sunrise Clinic back now." in says(response)
    assert b"colleague" not in again.content


def test_after_the_ladder_ran_out_the_responder_is_asked_to_call_the_clinic(paged, client):
    incident, _ = paged
    call = NotificationAttempt.objects.get(incident=incident, channel="voice")
    now = incident.next_step_at
    for _ in range(2):  # the backup's step, then past the last step: exhausted
        incident.refresh_from_db()
        services.incident_run_step(incident_id=incident.pk, fence=incident.fence, now=now, dispatch=False)
        now += timedelta(seconds=61)
    incident.refresh_from_db()
    assert incident.status == "unacknowledged"

    for response in (prompt(client, call), press(client, call), press(client, call, "2")):
        text = says(response)
        assert b"No one has acknowledged this urgent page yet" in text
        assert b"Please call the clinic now on " + SPOKEN_CALLBACK in text
        assert b"already" not in text and b"handled" not in text and b"closed" not in text
    incident.refresh_from_db()
    assert incident.status == "unacknowledged" and incident.acknowledged_at is None  # no late acknowledgement
