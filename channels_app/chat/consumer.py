"""``/ws/chat/?key=<widget public key>``: the chat websocket (Channels ``AsyncJsonWebsocketConsumer``).

The tenant and the browser's ``Origin`` were checked before this consumer runs
(:class:`channels_app.chat.middleware.WidgetOriginMiddleware`). Protocol (JSON text frames):

Client → server
  ``{"type": "hello", "visitor": "<16-64 [A-Za-z0-9_-]>", "link": "<signed token>"?, "last_seq": <int>?}``
      must be first; ``last_seq`` is the highest ``seq`` the widget has shown (-1 or absent: none).
  ``{"type": "message", "id": "<8-64 [A-Za-z0-9_-], unique per message>", "text": "<1-CHAT_MAX_MESSAGE_CHARS>"}``
      a resend with the same ``id`` (after a reconnect) is recorded once and answered once.
  ``{"type": "typing"}``  the visitor is typing (accepted, rate limited, otherwise ignored for now).
  ``{"type": "csat", "survey": id?, "score": 1..5}``  a star tapped on the satisfaction survey ``id`` (``bad_score``,
      ``no_survey``); answering an already answered survey again records nothing and is thanked again.

Server → client
  ``{"type": "hello", "identified": bool, "session": "<call_logs id>"|null}``
  ``{"type": "message", "seq": n, "id": "<client id>", "text": …}``  the visitor's turn as stored (the ack)
  ``{"type": "reply", "seq": n|null, "role": "agent"|"staff", "text": …}``  ``seq`` null: not stored (greeting
      of an unknown visitor)
  ``{"type": "typing", "on": bool}``  the agent is composing
  ``{"type": "survey", "survey": id, "question": …, "scale": 5}``  the session closed: rate it (stars); sent
      again after ``hello`` while the survey waits for an answer (a reload or a dropped connection lost it)
  ``{"type": "survey_thanks", "survey": id, "text": …}``  the score was recorded (to every tab of the session)
  ``{"type": "error", "code": "…", "message": "…", "id"?: "<client id>", "retry_after"?: seconds}``
      codes: ``bad_frame``, ``hello_first``, ``bad_visitor``, ``link_invalid``, ``link_expired``, ``link_used``, ``bad_id``,
      ``empty``, ``too_long``, ``frame_too_large`` (connection closed, 4009), ``too_deep`` (closed, 4008),
      ``rate_limited``, ``internal``.

Limits: ``CHAT_MAX_MESSAGE_CHARS`` (default 2000) per message, ``CHAT_MAX_FRAME_BYTES`` (default 16384) per
frame — enforced by daphne itself (``callsphere.web`` passes it as ``--websocket-max-message-size``), which closes
the connection with 1009 before the frame reaches Python; this consumer checks again and closes with 4009 (an
application may only close with 1000 or 3000–4999) — JSON nested at most :data:`MAX_JSON_DEPTH` deep (deeper:
``too_deep`` and close 4008, never a recursion crash), and messages per 60-second window (opened by the first
message, counted in Redis by the `limits` library, :mod:`channels_app.chat.limits`) per visitor
(``CHAT_RATE_LIMIT``, default 20), per client IP (``CHAT_IP_RATE_LIMIT``, default 40: new visitor ids cost
nothing) and per tenant (``CHAT_TENANT_RATE_LIMIT``, default 600), plus ``CHAT_FRAME_LIMIT`` frames per sliding
60 seconds per connection (default 120). Strings in frames have NUL and lone surrogates replaced
(:mod:`providers.text`). Frames of a session go to the Channels group
``chat.<call_logs id>`` so every tab of the visitor sees them. Database work (hello, each turn) runs on the chat
turn pool (:mod:`channels_app.chat.turns`), never on the single thread Channels shares per process. The visitor id is a bearer credential: it is
hashed at ``hello`` (:mod:`channels_app.chat.visitors`) and only the hash is kept, in Redis keys too.
"""

from __future__ import annotations

import logging
import time

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from channels_app.chat import services
from channels_app.chat.limits import Limit, limits_hit
from channels_app.chat.services import ChatError
from channels_app.chat.turns import in_turn_pool
from providers.text import pg_clean

logger = logging.getLogger(__name__)


#: Close codes (autobahn lets an application close only with 1000 or 3000-4999): 1009 / 1008 + 3000.
CLOSE_TOO_BIG = 4009
CLOSE_POLICY = 4008
#: Deepest JSON nesting a frame may have (the protocol needs 1; the stdlib parser recurses per level).
MAX_JSON_DEPTH = 8
RATE_WINDOW_SECONDS = 60


def _limit(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if ``text`` nests arrays/objects deeper than ``limit`` (brackets inside strings do not count).
    A linear scan, run before ``json.loads`` so a hostile frame never reaches the recursive parser."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


class ChatConsumer(AsyncJsonWebsocketConsumer):
    """One widget connection; see the module docstring for the protocol."""

    session: services.ChatSession | None = None
    group: str | None = None

    async def connect(self):
        self.tenant = self.scope["chat_tenant"]
        self.frames: list[float] = []
        await self.accept()

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if text_data is None or len(text_data.encode()) > _limit("CHAT_MAX_FRAME_BYTES", 16384):
            await self.error("frame_too_large", "frame too large or not text")
            await self.close(code=CLOSE_TOO_BIG)
            return
        if json_depth_exceeds(text_data):
            await self.error("too_deep", "frames are flat JSON objects")
            await self.close(code=CLOSE_POLICY)
            return
        try:
            content = await self.decode_json(text_data)
        except (ValueError, RecursionError):
            await self.error("bad_frame", "frames are JSON objects")
            return
        if not isinstance(content, dict):
            await self.error("bad_frame", "frames are JSON objects")
            return
        await self.receive_json(pg_clean(content))

    async def receive_json(self, content, **kwargs):
        now = time.monotonic()
        self.frames = [t for t in self.frames if t > now - 60] + [now]
        if len(self.frames) > _limit("CHAT_FRAME_LIMIT", 120):
            await self.error("rate_limited", "too many frames", retry_after=60)
            return
        kind = content.get("type")
        try:
            if kind == "hello":
                await self.on_hello(content)
            elif self.session is None:
                await self.error("hello_first", "send hello first")
            elif kind == "message":
                await self.on_message(content)
            elif kind == "typing":
                pass
            elif kind == "csat":
                await self.on_csat(content)
            else:
                await self.error("bad_frame", f"unknown frame type {kind!r}")
        except ChatError as exc:
            await self.error(exc.code, str(exc), id=content.get("id"))
        except Exception:
            logger.exception("chat frame failed")
            await self.error("internal", "something went wrong; please try again", id=content.get("id"))

    async def on_hello(self, content: dict):
        if self.session is not None:
            await self.error("bad_frame", "hello was already sent")
            return
        try:
            last_seq = int(content.get("last_seq", -1))
        except (TypeError, ValueError):
            last_seq = -1
        session, frames = await in_turn_pool(services.chat_hello)(
            tenant=self.tenant,
            visitor=str(content.get("visitor") or ""),
            link=str(content.get("link") or ""),
            last_seq=last_seq,
        )
        self.session = session
        await self.join(session)
        for frame in frames:
            await self.send_json(frame)

    async def on_message(self, content: dict):
        text = str(content.get("text") or "").strip()
        client_id = str(content.get("id") or "")
        if not text:
            raise ChatError("empty", "message is empty")
        if len(text) > _limit("CHAT_MAX_MESSAGE_CHARS", 2000):
            raise ChatError("too_long", f"messages are limited to {_limit('CHAT_MAX_MESSAGE_CHARS', 2000)} characters")
        if retry := await self.over_rate_limit():
            await self.error("rate_limited", "you're sending messages too quickly", id=client_id, retry_after=retry)
            return
        await self.send_json({"type": "typing", "on": True})
        try:
            frames = await in_turn_pool(services.chat_message)(session=self.session, client_id=client_id, text=text)
        finally:
            await self.send_json({"type": "typing", "on": False})
        await self.join(self.session)
        for frame in frames:
            await self.channel_layer.group_send(self.group, {"type": "chat.frame", "frame": frame})

    async def on_csat(self, content: dict):
        """A star tapped on the survey the server pushed (``{"type": "csat", "survey": id, "score": 1..5}``)."""
        from channels_app.surveys import chat_survey_answer

        try:
            thanks = await in_turn_pool(chat_survey_answer)(
                tenant=self.tenant,
                customer=self.session.customer,
                score=content.get("score"),
                survey_id=content.get("survey"),
            )
        except ValueError:
            raise ChatError("bad_score", "score must be a whole number from 1 to 5") from None
        except LookupError:
            raise ChatError("no_survey", "there is no survey to answer") from None
        await self.send_json(thanks)
        if self.group:  # the visitor's other tabs replace their stars too
            await self.channel_layer.group_send(
                self.group, {"type": "chat.frame", "frame": thanks, "skip": self.channel_name}
            )

    async def over_rate_limit(self) -> int:
        """Seconds to wait (until the full window ends) if this message is beyond the visitor's, this client
        IP's or the tenant's limit, else 0 (see :mod:`channels_app.chat.limits`). The visitor is counted by its
        key (a hash: the visitor id is a bearer credential and never becomes a Redis key)."""
        tenant_id = self.tenant.pk
        ip = (self.scope.get("client") or ("unknown",))[0]
        full = await sync_to_async(limits_hit, thread_sensitive=False)(
            Limit(
                f"chat-rate:{tenant_id}:{self.session.visitor_key}", _limit("CHAT_RATE_LIMIT", 20), RATE_WINDOW_SECONDS
            ),
            Limit(f"chat-rate-ip:{tenant_id}:{ip}", _limit("CHAT_IP_RATE_LIMIT", 40), RATE_WINDOW_SECONDS),
            Limit(f"chat-rate-tenant:{tenant_id}", _limit("CHAT_TENANT_RATE_LIMIT", 600), RATE_WINDOW_SECONDS),
        )
        if full is not None and full[0].key.startswith("chat-rate-tenant:"):
            logger.warning("chat messages: tenant %s reached its per-minute limit", tenant_id)
        return full[1] if full is not None else 0

    async def join(self, session: services.ChatSession):
        group = f"chat.{session.interaction.pk}" if session.interaction else None
        if group != self.group:
            if self.group:
                await self.channel_layer.group_discard(self.group, self.channel_name)
            if group:
                await self.channel_layer.group_add(group, self.channel_name)
            self.group = group

    async def chat_frame(self, event):
        if event.get("skip") != self.channel_name:
            await self.send_json(event["frame"])

    async def error(self, code: str, message: str, **extra):
        await self.send_json(
            {"type": "error", "code": code, "message": message, **{k: v for k, v in extra.items() if v is not None}}
        )
