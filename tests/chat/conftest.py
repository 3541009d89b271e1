"""Chat fixtures: daphne (real websockets) for this module, a websocket client, a Chromium via Playwright."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest


class WsClient:
    """Drive ``/ws/chat/`` with aiohttp in a private event loop (tests stay synchronous)."""

    def __init__(self, base: str, key: str, origin: str | None):
        self.loop = asyncio.new_event_loop()
        self.session = self.loop.run_until_complete(self._session())
        headers = {"Origin": origin} if origin else {}
        url = base.replace("http", "ws", 1) + f"/ws/chat/?key={key}"
        try:
            self.ws = self.loop.run_until_complete(
                self.session.ws_connect(url, headers=headers, timeout=aiohttp.ClientWSTimeout(ws_close=10))
            )
        except BaseException:  # a refused handshake: release the session and the loop, then let it raise
            self._shut()
            raise

    async def _session(self):
        return aiohttp.ClientSession()

    def send(self, frame: dict | str):
        payload = frame if isinstance(frame, str) else json.dumps(frame)
        self.loop.run_until_complete(self.ws.send_str(payload))

    def recv(self, timeout: float = 20.0) -> dict:
        msg = self.loop.run_until_complete(self.ws.receive(timeout=timeout))
        if msg.type != aiohttp.WSMsgType.TEXT:
            return {"type": "_closed", "code": self.ws.close_code}
        return json.loads(msg.data)

    def until(self, predicate, timeout: float = 20.0) -> list[dict]:
        """Frames received until one satisfies ``predicate`` (inclusive)."""
        frames = []
        while True:
            frame = self.recv(timeout)
            frames.append(frame)
            if predicate(frame) or frame["type"] == "_closed":
                return frames

    def close(self):
        """Close the websocket, the session and the loop; a no-op once done (a test may close a client itself
        before the fixture's teardown closes every client)."""
        if self.loop.is_closed():
            return
        try:
            self.loop.run_until_complete(self.ws.close())
        finally:
            self._shut()

    def _shut(self):
        try:
            self.loop.run_until_complete(self.session.close())
        finally:
            self.loop.close()


@pytest.fixture
def ws_connect(daphne):
    clients = []

    def connect(tenant, origin: str | None = "https://clinic.example.com", key: str | None = None):
        client = WsClient(daphne, key or tenant.widget_public_key, origin)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - already closed by the server
            pass
