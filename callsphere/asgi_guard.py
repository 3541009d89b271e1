"""ASGI wrapper for HTTP: an application error after the response started ends the response instead of
reaching daphne.

Daphne answers an application exception with a 500 page; once a response has started it cannot, raises inside
its own reaper loop (``Server.application_checker``) and that loop stops — from then on finished requests are
not reaped and timeouts not checked, so clients hang. Streaming views (the exports) handle their own failures;
this is the net for any that does not.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class FinishStartedResponses:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = finished = False

        async def tracking_send(message):
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if not started or finished:
                raise
            logger.exception("%s failed after its response started; ending the response", scope.get("path"))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
