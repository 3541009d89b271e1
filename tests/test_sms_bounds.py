"""Inbound SMS at its bounds: Twilio's 1,600-character body, NumMedia 0..10, characters PostgreSQL refuses."""

import pytest

from conversations.models import Interaction
from tests.sms import inbound, nothing_written

pytestmark = pytest.mark.django_db


def test_nul_is_stored_replaced(tenant, twilio_post):
    response = twilio_post("/twilio/sms/", inbound(tenant, body="chest\x00pain\x00!"), tenant=tenant)
    assert response.status_code == 200
    assert [t["text"] for t in Interaction.objects.get().transcript] == ["chest\ufffdpain\ufffd!"]


def test_nul_in_a_number_is_refused_not_a_500(tenant, twilio_post):
    params = {**inbound(tenant), "To": "+1555010\x000001"}
    assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 403
    params = {**inbound(tenant), "From": "+1555\x00"}
    assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 400
    assert nothing_written()


def test_a_megabyte_body_is_cut_at_twilios_1600_characters_and_says_so(tenant, twilio_post):
    response = twilio_post("/twilio/sms/", inbound(tenant, body="a" * 1_000_000), tenant=tenant)
    assert response.status_code == 200
    turn = Interaction.objects.get().transcript[0]
    assert len(turn["text"]) == 1600 and turn["truncated_from_chars"] == 1_000_000


@pytest.mark.parametrize("num_media", ["abc", "1e8", "100000000", "11", "-1", " 1", "１"])
def test_num_media_outside_0_to_10_is_400(tenant, twilio_post, num_media):
    params = {**inbound(tenant), "NumMedia": num_media}
    response = twilio_post("/twilio/sms/", params, tenant=tenant)
    assert response.status_code == 400 and b"NumMedia" in response.content
    assert nothing_written()


def test_ten_media_are_kept(tenant, twilio_post):
    params = {**inbound(tenant), "NumMedia": "10"}
    params.update({f"MediaUrl{i}": f"https://api.twilio.com/media/{i}" for i in range(10)})
    assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 200
    assert len(Interaction.objects.get().transcript[0]["media"]) == 10


def test_an_oversize_sid_is_400(tenant, twilio_post):
    params = {**inbound(tenant), "MessageSid": "SM" + "x" * 300}
    assert twilio_post("/twilio/sms/", params, tenant=tenant).status_code == 400
    assert nothing_written()
