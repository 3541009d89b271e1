"""Export API: tenant scoping, keys and scopes, filters, cursor pages, CSV/NDJSON, Customer 360, quarterly."""

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations.api.models import ApiKey, ApiScope
from conversations.api.services import api_key_create, api_key_revoke
from conversations.models import Appointment
from tests.analytics.fixtures import END, build
from tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(tenant, other_tenant):
    d = build(tenant, other_tenant)
    d["appt"] = Appointment.objects.create(
        tenant=tenant, customer=d["a"], starts_at=END, ends_at=END + timedelta(hours=1)
    )
    d["foreign_appt"] = Appointment.objects.create(
        tenant=other_tenant, customer=d["foreign"], starts_at=END, ends_at=END + timedelta(hours=1)
    )
    return d


def test_key_is_stored_hashed_and_must_be_presented(client, tenant, data, key_for):
    raw = key_for(tenant)
    row = ApiKey.objects.get(tenant=tenant)
    assert raw not in (row.hashed_key, row.prefix) and raw.startswith(f"csk_{row.prefix}_")
    assert client.get("/api/v1/interactions/").status_code == 401
    assert client.get("/api/v1/interactions/", HTTP_AUTHORIZATION="Bearer " + raw[:-2] + "xx").status_code == 401
    assert client.get("/api/v1/interactions/", HTTP_AUTHORIZATION="Bearer " + raw).status_code == 200


def test_revoked_and_expired_keys_are_refused(api, tenant, data):
    key, raw = api_key_create(tenant=tenant, name="x")
    get = api(tenant, key=raw)
    assert get("/api/v1/interactions/").status_code == 200
    assert api_key_revoke(api_key=key) is True and api_key_revoke(api_key=key) is False
    assert get("/api/v1/interactions/").status_code == 401
    key2, raw2 = api_key_create(tenant=tenant, name="y")
    ApiKey.objects.filter(pk=key2.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api(tenant, key=raw2)("/api/v1/interactions/").status_code == 401


def test_scope_is_enforced(api, tenant, data):
    get = api(tenant, scopes=[ApiScope.CONVERSATIONS_READ])
    assert get("/api/v1/conversations/").status_code == 200
    assert get("/api/v1/interactions/").status_code == 403
    assert get(f"/api/v1/customers/{data['a'].id}/timeline/").status_code == 403
    assert get("/api/v1/reports/quarterly-review/", {"customer": str(data["a"].id)}).status_code == 403


def test_key_of_tenant_a_cannot_read_tenant_b(api, tenant, data):
    get = api(tenant)
    ids = {r["id"] for r in get("/api/v1/interactions/", {"page_size": 1000}).json()["results"]}
    assert str(data["foreign_i"].id) not in ids and str(data["i1"].id) in ids
    for path in (
        f"/api/v1/interactions/{data['foreign_i'].id}/",
        f"/api/v1/conversations/{data['foreign_i'].conversation_id}/",
        f"/api/v1/appointments/{data['foreign_appt'].id}/",
        f"/api/v1/customers/{data['foreign'].id}/timeline/",
    ):
        assert get(path).status_code == 404, path
    assert (
        get("/api/v1/reports/quarterly-review/", {"customer": [str(data["a"].id), str(data["foreign"].id)]}).status_code
        == 404
    )
    csv_text = b"".join(get("/api/v1/interactions/", {"format": "csv"}).streaming_content).decode()
    assert str(data["foreign_i"].id) not in csv_text
    # own rows are found by the same routes
    assert get(f"/api/v1/interactions/{data['i1'].id}/").status_code == 200
    assert get(f"/api/v1/appointments/{data['appt'].id}/").json()["customer"] == str(data["a"].id)


def test_interaction_filters(api, tenant, data):
    get = api(tenant)

    def ids(**params):
        return {r["id"] for r in get("/api/v1/interactions/", params).json()["results"]}

    assert ids(channel=["voice", "chat"]) == {str(data[k].id) for k in ("i2", "i4", "b1")}
    assert ids(escalated="true") == {str(data["i2"].id)}
    assert ids(sentiment_min="0.3", sentiment_max="0.5") == {str(data[k].id) for k in ("i1", "i5")}
    assert ids(started_after="2026-03-09T00:00:00Z", started_before="2026-03-11T00:00:00Z") == {
        str(data["i3"].id),
        str(data["i4"].id),
    }
    assert ids(customer=str(data["b"].id)) == {str(data["b1"].id)}
    assert get("/api/v1/interactions/", {"started_after": "not a date"}).status_code == 400


def test_cursor_pagination_walks_every_row_once(api, tenant, data):
    get = api(tenant)
    page = get("/api/v1/interactions/", {"page_size": 3}).json()
    seen = [r["id"] for r in page["results"]]
    while page["next"]:
        page = get(page["next"].replace("http://testserver", "")).json()
        seen += [r["id"] for r in page["results"]]
    assert len(seen) == len(set(seen)) == 8  # tenant rows only
    started = [get(f"/api/v1/interactions/{i}/").json()["started_at"] for i in seen]
    assert started == sorted(started, reverse=True)


def test_csv_and_ndjson_streams(api, tenant, data):
    get = api(tenant)
    response = get("/api/v1/interactions/", {"format": "csv", "channel": "sms"})
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["id"] for r in rows] == [str(data[k].id) for k in ("old", "edge", "i1", "i3", "i5")]  # ascending
    assert rows[2]["sentiment"] == "0.5000" and rows[2]["customer_id"] == str(data["a"].id)
    assert json.loads(rows[2]["transcript"]) == []

    response = get("/api/v1/interactions/", HTTP_ACCEPT="application/x-ndjson")
    assert response["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert len(lines) == 8 and lines[0]["metadata"] == {} and isinstance(lines[0]["transcript"], list)
    by_id = {r["id"]: r for r in lines}
    assert by_id[str(data["i2"].id)]["sentiment"] == -0.25 and by_id[str(data["i2"].id)]["escalated"] is True

    conv = b"".join(get("/api/v1/conversations/", {"format": "ndjson"}).streaming_content).decode().splitlines()
    assert len(conv) == 2
    appts = list(
        csv.DictReader(
            io.StringIO(b"".join(get("/api/v1/appointments/", {"format": "csv"}).streaming_content).decode())
        )
    )
    assert [a["id"] for a in appts] == [str(data["appt"].id)]


def test_ndjson_keeps_json_columns_verbatim(api, tenant):
    turns = [{"role": "customer", "text": 'quote " and \\ and ünïcode', "at": "2026-03-01T10:00:00+00:00"}]
    row = InteractionFactory(
        conversation__customer__tenant=tenant,
        transcript=turns,
        metadata={"MessageSid": "SM1"},
        sentiment=Decimal("0.1"),
    )
    lines = b"".join(api(tenant)("/api/v1/interactions/", {"format": "ndjson"}).streaming_content).splitlines()
    got = json.loads(lines[0])
    assert got["id"] == str(row.id) and got["transcript"] == turns and got["metadata"] == {"MessageSid": "SM1"}


def test_timeline_endpoint(api, tenant, data):
    get = api(tenant)
    body = get(f"/api/v1/customers/{data['a'].id}/timeline/", {"end": END.isoformat()}).json()
    assert body["total"] == 5 and [i["id"] for i in body["interactions"]][:2] == [
        str(data["i5"].id),
        str(data["i4"].id),
    ]
    assert body["weekly"] == [
        {"week_start": "2026-03-02", "count": 3, "avg_sentiment": 0.1167},
        {"week_start": "2026-03-09", "count": 2, "avg_sentiment": 0.3},
    ]
    body = get(
        f"/api/v1/customers/{data['a'].id}/timeline/", {"end": END.isoformat(), "channel": ["voice"], "limit": 1}
    ).json()
    assert body["by_channel"] == [{"channel": "voice", "count": 1, "avg_sentiment": -0.25}]
    assert get(f"/api/v1/customers/{data['a'].id}/timeline/", {"channel": "fax"}).status_code == 400


def test_quarterly_endpoint(api, tenant, data):
    body = api(tenant)(
        "/api/v1/reports/quarterly-review/",
        {"customer": [str(data["a"].id), str(data["b"].id)], "end": END.isoformat()},
    ).json()
    assert len(body["rows"]) == 6
    assert {
        "customer_id": str(data["b"].id),
        "channel": "voice",
        "week_start": "2026-03-02",
        "count": 1,
        "avg_sentiment": 1.0,
    } in body["rows"]
    assert api(tenant)("/api/v1/reports/quarterly-review/").status_code == 400


def test_staff_session_reads_own_tenant_only(client, tenant, data, django_user_model):
    from identity.models import TenantMembership

    user = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    TenantMembership.objects.create(user=user, tenant=tenant)
    client.force_login(user)
    assert client.get(f"/api/v1/interactions/{data['i1'].id}/").status_code == 200
    assert client.get(f"/api/v1/interactions/{data['foreign_i'].id}/").status_code == 404


def test_openapi_schema_is_served_and_valid(client, tmp_path):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert "/api/v1/interactions/" in schema["paths"] and "ApiKeyAuth" in schema["components"]["securitySchemes"]
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
