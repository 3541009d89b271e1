"""Bad input on the chat websocket, through a real daphne: oversize and deeply nested frames close cleanly,
characters PostgreSQL refuses are replaced, and limits hold per visitor, per IP and per tenant."""

from __future__ import annotations

import pytest

from conversations.models import Interaction

pytestmark = [pytest.mark.django_db(transaction=True)]


def _hello(ws, visitor: str):
    ws.send({"type": "hello", "visitor": visitor})
    return ws.until(lambda f: f["type"] == "reply")


def test_a_100k_frame_closes_with_1009(tenant, ws_connect):
    ws = ws_connect(tenant)
    _hello(ws, "big-frame-visitor-0001")
    ws.send('{"type": "message", "id": "msg-000001", "text": "' + "x" * 100_000 + '"}')
    # daphne refuses it before Python sees it, with a clean close frame (not a dropped connection, not 1011)
    assert ws.until(lambda f: False) == [{"type": "_closed", "code": 1009}]
    # the server is fine: a new connection works
    assert _hello(ws_connect(tenant), "big-frame-visitor-0002")[-1]["type"] == "reply"


def test_the_consumer_bounds_frames_itself_too():
    """Behind a server without a message-size limit the consumer still refuses an oversize frame, and a deep
    frame is refused by a linear scan before the recursive JSON parser sees it."""
    from channels_app.chat.consumer import json_depth_exceeds

    assert json_depth_exceeds("[" * 5000 + "]" * 5000)
    assert not json_depth_exceeds('{"type": "message", "text": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')
    assert not json_depth_exceeds('{"a": "\\"[[[[[[[[[[[[[[[[[[[[[", "b": [1, {"c": 2}]}')
    assert json_depth_exceeds('{"a": ' * 9 + "1" + "}" * 9)


def test_a_deeply_nested_frame_is_refused_and_closed_cleanly(tenant, ws_connect):
    ws = ws_connect(tenant)
    _hello(ws, "deep-frame-visitor-0001")
    ws.send("[" * 5000 + "]" * 5000)
    frames = ws.until(lambda f: False)
    assert frames[0]["code"] == "too_deep"
    assert frames[-1] == {"type": "_closed", "code": 4008}
    # the server is fine: a new connection works
    again = ws_connect(tenant)
    assert _hello(again, "deep-frame-visitor-0002")[-1]["type"] == "reply"


def test_nul_and_lone_surrogates_in_chat_are_stored_replaced(tenant, ws_connect):
    ws = ws_connect(tenant)
    _hello(ws, "nul-visitor-000000001")
    ws.send('{"type": "message", "id": "msg-nul-0001", "text": "chest\\u0000pain \\ud800 help"}')
    frames = ws.until(lambda f: f["type"] in ("reply", "error"))
    assert frames[-1]["type"] == "reply", frames
    turns = Interaction.objects.get(tenant=tenant, channel="chat").transcript
    assert any(t["text"] == "chest\ufffdpain \ufffd help" for t in turns), turns


@pytest.fixture
def strict_daphne(tmp_path):
    from tests import processes

    proc, base = processes.start_daphne(
        log_path=tmp_path / "daphne.log", CHAT_RATE_LIMIT="3", CHAT_IP_RATE_LIMIT="5", CHAT_TENANT_RATE_LIMIT="100"
    )
    yield base
    processes.stop(proc)


def test_new_visitor_ids_from_one_ip_share_the_ip_limit(tenant, strict_daphne, redis_client):
    from tests.chat.conftest import WsClient

    redis_client.delete(*redis_client.keys(f"LIMITS:*{tenant.pk}*") or ["-"])
    codes = []
    clients = []
    try:
        for v in range(3):  # three fresh visitor ids, three messages each: 9 > the IP's 5
            ws = WsClient(strict_daphne, tenant.widget_public_key, "https://clinic.example.com")
            clients.append(ws)
            _hello(ws, f"ip-limit-visitor-{v:06d}")
            for i in range(3):
                ws.send({"type": "message", "id": f"msg-{v}-{i:06d}", "text": f"hello {i}"})
                codes.append(ws.until(lambda f: f["type"] in ("reply", "error"))[-1].get("code"))
    finally:
        for ws in clients:
            ws.close()
    assert codes == [None] * 5 + ["rate_limited"] * 4


def test_limits_count_in_order_and_stop_at_the_first_full_one(redis_client):
    import uuid

    from channels_app.chat.limits import Limit, limits_hit

    tag = uuid.uuid4().hex
    visitor, ip, tenant = (
        Limit(f"t-{tag}-visitor", 2, 60),
        Limit(f"t-{tag}-ip", 3, 60),
        Limit(f"t-{tag}-tenant", 10, 60),
    )
    results = [limits_hit(visitor, ip, tenant) for _ in range(3)]
    assert results[:2] == [None, None]
    full, retry = results[2]
    assert full == visitor and 1 <= retry <= 60
    other = Limit(f"t-{tag}-visitor2", 2, 60)
    assert limits_hit(other, ip, tenant) is None  # the IP had 2 counted (the refused one stopped at visitor)
    assert limits_hit(other, ip, tenant)[0] == ip
    assert redis_client.get(f"LIMITS:LIMITER/t-{tag}-tenant/10/60/second") == b"3"
