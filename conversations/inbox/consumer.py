"""``/ws/inbox/``: live updates for a clinic's staff pages (Channels ``AsyncJsonWebsocketConsumer``).

Only an authenticated staff user with a clinic membership (and a second factor this session where one is
required) is accepted (the session cookie, through Channels'
``AuthMiddlewareStack``; the ``Origin`` must be an allowed host); the socket joins ``inbox.<that tenant>`` and
nothing else, so a clinic never hears another's events. Server → client frames:
``{"type": "inbox", "conversation": "<id>", "kind": "message"|"needs_human"|"staff_message"|…}`` — ids only;
the page fetches what changed through the tenant-scoped admin views. Client frames are ignored.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from conversations.inbox.live import inbox_group
from identity.accounts import otp_required, session_otp_verified
from identity.admin_scoping import user_tenant_id
from identity.roles import user_reads_transcripts


def _staff_tenant(user, session=None):
    """The tenant id of an active staff ``user`` who has given a second factor in ``session`` where one is
    required (identity.accounts), else None."""
    if user is None or not user.is_authenticated or not user.is_staff or not user.is_active:
        return None
    if otp_required(user) and not session_otp_verified(user, session):
        return None
    if not user_reads_transcripts(user):
        return None
    return user_tenant_id(user)


class InboxConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self):
        tenant_id = await database_sync_to_async(_staff_tenant)(self.scope.get("user"), self.scope.get("session"))
        if tenant_id is None:
            await self.close(code=4403)
            return
        self.group = inbox_group(tenant_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        return  # the inbox socket only listens

    async def inbox_event(self, event):
        await self.send_json({"type": "inbox", "conversation": event["conversation"], "kind": event["kind"]})
