"""Bad input and faults on the export API: impossible datetimes are a 400 before any query; streams release
their connection on error and on client disconnect, under a real daphne."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from django.db import connection

from conversations.api.services import api_key_create
from tests import processes
from tests.api.rows import insert_rows
from tests.factories import ConversationFactory

BAD_DATETIMES = [
    "2020-01-01T00:00:00+16:30",  # beyond PostgreSQL's ±15:59
    "2020-01-01T00:00:00-16:00",
    "0001-01-01T00:00:00+01:00",  # before year 1 once in UTC
    "9999-12-31T23:59:59-01:00",  # after year 9999 once in UTC
    "2020-13-01T00:00:00Z",
    "yesterday",
]


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["json", "csv", "ndjson"])
@pytest.mark.parametrize(
    "path, param",
    [
        ("/api/v1/conversations/", "opened_after"),
        ("/api/v1/conversations/", "opened_before"),
        ("/api/v1/interactions/", "started_after"),
        ("/api/v1/interactions/", "updated_after"),
        ("/api/v1/appointments/", "starts_before"),
    ],
)
def test_impossible_datetimes_answer_400(api, tenant, path, param, fmt):
    get = api(tenant)
    for value in BAD_DATETIMES:
        response = get(path, {param: value, "format": fmt})
        assert response.status_code == 400, (value, response.status_code)
        assert not response.streaming
        assert param in response.content.decode(), response.content


@pytest.mark.django_db
def test_extreme_but_real_offsets_are_converted_to_utc(api, tenant):
    conversation = ConversationFactory(customer__tenant=tenant)
    get = api(tenant)
    found = get("/api/v1/conversations/", {"opened_after": "2000-01-01T00:00:00+14:00"}).json()["results"]
    assert [r["id"] for r in found] == [str(conversation.id)]
    csv_text = b"".join(get("/api/v1/conversations/", {"opened_after": "2000-01-01T00:00-12:00", "format": "csv"}))
    assert str(conversation.id) in csv_text.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path, params",
    [
        ("/api/v1/interactions/", {"sentiment_min": "1e999999"}),
        ("/api/v1/interactions/", {"sentiment_max": "-2"}),
        ("/api/v1/interactions/", {"intent": "x" * 65}),
        ("/api/v1/interactions/", {"intent": "a\x00b"}),
        ("/api/v1/appointments/", {"resource": "r" * 61}),
        ("/api/v1/conversations/", {"customer": "not-a-uuid"}),
        ("/api/v1/conversations/", {"status": "bogus"}),
    ],
)
def test_out_of_range_filters_answer_400(api, tenant, path, params):
    for fmt in ("json", "csv"):
        assert api(tenant)(path, {**params, "format": fmt}).status_code == 400, (params, fmt)


@pytest.mark.django_db
def test_forged_cursor_position_is_an_invalid_cursor(api, tenant):
    import base64
    from urllib.parse import urlencode

    ConversationFactory(customer__tenant=tenant)
    get = api(tenant)
    for position in ("2020-01-01T00:00:00+16:30", "garbage", "0001-01-01T00:00:00+01:00"):
        cursor = base64.b64encode(urlencode({"p": position}).encode()).decode()
        response = get("/api/v1/conversations/", {"cursor": cursor})
        assert response.status_code == 404, (position, response.status_code)


def _backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.fixture
def web(tmp_path):
    # per-request connections (no pool), so a connection an error failed to give back shows as a backend
    proc, base = processes.start_daphne(log_path=tmp_path / "web.log", DB_POOL_MAX_SIZE="0")
    yield base
    processes.stop(proc)


@pytest.mark.django_db(transaction=True)
def test_150_bad_offset_exports_leave_the_connection_count_flat(tenant, web):
    raw = api_key_create(tenant=tenant, name="red-team")[1]
    headers = {"Authorization": f"Bearer {raw}"}
    with httpx.Client(base_url=web, headers=headers, timeout=30) as client:
        assert client.get("/healthz").status_code == 200
        processes.wait_for(lambda: _backends() == 0, timeout=30)
        statuses = set()
        for i in range(150):
            fmt = ("csv", "ndjson", "json")[i % 3]
            response = client.get(
                "/api/v1/conversations/", params={"format": fmt, "opened_after": "2020-01-01T00:00:00+16:30"}
            )
            statuses.add(response.status_code)
        assert statuses == {400}
        # every request's connection was given back (web runs CONN_MAX_AGE=0): none is left behind
        processes.wait_for(lambda: _backends() == 0, timeout=30)
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/v1/conversations/", params={"format": "csv"}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_client_leaving_mid_stream_frees_its_connection(tenant, web):
    insert_rows(ConversationFactory(customer__tenant=tenant), 50_000)
    raw = api_key_create(tenant=tenant, name="leaver")[1]
    processes.wait_for(lambda: _backends() == 0, timeout=30)
    for _ in range(5):
        with httpx.Client(base_url=web, timeout=30) as client:
            with client.stream(
                "GET", "/api/v1/interactions/", params={"format": "csv"}, headers={"Authorization": f"Bearer {raw}"}
            ) as response:
                assert response.status_code == 200
                next(response.iter_raw())
        # the client hung up without reading on
    processes.wait_for(lambda: _backends() == 0, timeout=30)
    assert httpx.get(web + "/healthz").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_stream_failing_midway_ends_with_a_marker_and_frees_its_connection(tenant, web):
    """The export's backend is killed after the 200 went out: the body ends with the interrupted marker (not a
    hang), the connection is gone, and the server goes on answering."""
    insert_rows(ConversationFactory(customer__tenant=tenant), 50_000)
    raw = api_key_create(tenant=tenant, name="victim")[1]
    dsn = processes.test_database_url()
    with httpx.Client(base_url=web, timeout=30) as client:
        with client.stream(
            "GET", "/api/v1/interactions/", params={"format": "ndjson"}, headers={"Authorization": f"Bearer {raw}"}
        ) as response:
            assert response.status_code == 200
            chunks = response.iter_bytes()
            body = next(chunks)
            with psycopg.connect(dsn, autocommit=True) as killer:
                killed = killer.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'COPY %'"
                ).fetchall()
            assert killed
            body += b"".join(chunks)
    assert body.endswith(b'{"error": "export_interrupted"}\n')
    assert body.count(b"\n") < 50_000
    processes.wait_for(lambda: _backends() == 0, timeout=30)
    assert httpx.get(web + "/healthz").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path, expected", [("/api/v1/interactions/", "1min"), ("/twilio/sms/", "15s"), ("/admin/", "0")]
)
def test_each_role_gets_its_statement_timeout_and_gives_it_back(rf, path, expected):
    from django.http import HttpResponse

    from callsphere.db_timeouts import StatementTimeoutMiddleware

    def show() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            return cursor.fetchone()[0]

    seen = []
    middleware = StatementTimeoutMiddleware(lambda request: seen.append(show()) or HttpResponse())
    middleware(rf.get(path))
    assert seen == [expected]
    assert show() == "0"  # reset after a non-streamed response
