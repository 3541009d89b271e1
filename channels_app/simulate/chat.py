"""``simulate chat``: a widget's websocket session against a running server — hello, one line, the reply.

Connects to ``/ws/chat/?key=<tenant widget key>`` with the ``Origin`` of ``PUBLIC_BASE_URL`` (always allowed),
says hello with a visitor id (``--visitor``; keep it to continue as the same browser), sends ``--text`` and
prints every frame until the agent's reply. ``--phone`` first sends the number, like a patient who says who
they are in chat, then the one-time code the server texted to it; ``--link`` uses a signed chat link token
instead.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets

import aiohttp
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management.base import CommandError

from conversations.models import ChannelMessage


def add_arguments(parser) -> None:
    parser.add_argument("--text", required=True, help="what the visitor types")
    parser.add_argument("--visitor", default="", help="visitor id (16-64 chars); random if omitted")
    parser.add_argument("--phone", default="", help="identify by phone number first (E.164 or local)")
    parser.add_argument("--link", default="", help="a signed chat link token (the part after /c/)")
    parser.add_argument("--wait", type=float, default=15.0, help="seconds to wait for each reply")


async def _session(command, tenant, server: str, options) -> None:
    url = server.replace("http", "ws", 1).rstrip("/") + f"/ws/chat/?key={tenant.widget_public_key}"
    visitor = options["visitor"] or "sim" + secrets.token_hex(12)
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(url, headers={"Origin": settings.PUBLIC_BASE_URL})
        except aiohttp.WSServerHandshakeError as exc:
            raise CommandError(f"websocket refused: HTTP {exc.status}") from exc

        async def until_reply(after: str = ""):
            """Frames until the agent's reply (or an error); with ``after``, the reply that follows the echo
            of our message ``after`` — a reconnect first replays the session so far."""
            echoed = not after
            while True:
                msg = await ws.receive(timeout=options["wait"])
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise CommandError("connection closed")
                frame = json.loads(msg.data)
                command.stdout.write(f"← {json.dumps(frame)}")
                echoed = echoed or (frame["type"] == "message" and frame.get("id") == after)
                if frame["type"] == "error" or (frame["type"] == "reply" and echoed):
                    return frame

        hello = {"type": "hello", "visitor": visitor, **({"link": options["link"]} if options["link"] else {})}
        await ws.send_str(json.dumps(hello))
        command.stdout.write(f"→ {json.dumps(hello)}")
        greeting = await until_reply()  # hello, then the greeting (or the session so far)
        if greeting["type"] == "error":
            raise CommandError(f"hello refused: {greeting.get('message', greeting.get('code'))}")

        async def say(text: str) -> dict:
            frame = {"type": "message", "id": secrets.token_hex(8), "text": text}
            await ws.send_str(json.dumps(frame))
            command.stdout.write(f"→ {json.dumps(frame)}")
            return await until_reply(after=frame["id"])

        if options["phone"]:
            reply = await say(f"My number is {options['phone']}")
            if "code" in reply.get("text", ""):
                code = await sync_to_async(_texted_code)(visitor)
                command.stdout.write(f"(the code texted to {options['phone']} was {code})")
                await say(code)
        await say(options["text"])
        await ws.close()
    command.stdout.write(f"visitor id: {visitor}")


def _texted_code(visitor: str) -> str:
    """The verification code the server texted for ``visitor`` — read from its outbound SMS, as the patient's
    phone would show it (a development aid: simulate runs beside the server, on its database)."""
    from channels_app.chat.visitors import visitor_key

    message = ChannelMessage.objects.filter(idempotency_key__startswith=f"chat-verify:{visitor_key(visitor)}:").latest(
        "id"
    )
    match = re.search(r"\b(\d{6})\b", message.body)
    if not match:
        raise CommandError("no verification code found")
    return match.group(1)


def run(command, tenant, to: str, server: str, options) -> None:
    asyncio.run(_session(command, tenant, server, options))
