"""SMS backends: ``TwilioSmsBackend`` (production), ``ConsoleSmsBackend`` (demo), ``LocmemSmsBackend`` (tests).

Every backend takes E.164 ``from_`` / ``to`` and returns a :class:`SentMessage` with a Twilio-shaped SID.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.utils.module_loading import import_string

from providers.twilio_client import translate_errors, twilio_client


@dataclass
class SentMessage:
    """A message the provider accepted: its SID (``SM…``) and first status (``queued``, ``sent``…)."""

    sid: str
    status: str
    to: str = ""
    body: str = ""


def _fake_sid(prefix: str = "SM") -> str:
    return prefix + uuid.uuid4().hex


class SmsBackend:
    """Interface of an SMS provider."""

    def send(self, *, tenant, from_: str, to: str, body: str, status_callback: str | None = None) -> SentMessage:
        """Send ``body`` from the tenant's number ``from_`` to ``to``. Raises ProviderTransientError /
        ProviderPermanentError (``providers``)."""
        raise NotImplementedError

    def fetch(self, *, tenant, sid: str) -> SentMessage:
        """Look a message up by SID (reconciliation after an ambiguous failure)."""
        raise NotImplementedError

    def find_recent(
        self, *, tenant, from_: str, to: str, body: str, since: datetime | None = None, exclude: Collection[str] = ()
    ) -> SentMessage | None:
        """The newest message from ``from_`` to ``to`` with exactly ``body`` (reconciliation when no SID came
        back), created at or after ``since`` (aware) when given, whose SID is not in ``exclude`` (SIDs the
        caller already owns). None if there is none."""
        raise NotImplementedError


class TwilioSmsBackend(SmsBackend):
    """Sends through Twilio's Programmable Messaging REST API with the tenant's own credentials."""

    def send(self, *, tenant, from_, to, body, status_callback=None):
        with translate_errors():
            kwargs = {"from_": from_, "to": to, "body": body}
            if status_callback:
                kwargs["status_callback"] = status_callback
            msg = twilio_client(tenant).messages.create(**kwargs)
        return SentMessage(sid=msg.sid, status=msg.status, to=to, body=body)

    def fetch(self, *, tenant, sid):
        with translate_errors():
            msg = twilio_client(tenant).messages(sid).fetch()
        return SentMessage(sid=msg.sid, status=msg.status, to=msg.to, body=msg.body)

    def find_recent(self, *, tenant, from_, to, body, since=None, exclude=()):
        # Filtered on date_created here, not with Twilio's DateSent> filter: a message still queued has no
        # date_sent yet and would be missed — exactly the one an uncertain attempt just created.
        with translate_errors():
            for msg in twilio_client(tenant).messages.list(from_=from_, to=to, limit=20):
                if since is not None and msg.date_created is not None and msg.date_created < since:
                    continue  # Twilio sorts by DateSent / StartTime, not creation: no early exit
                if msg.body == body and msg.sid not in exclude:
                    return SentMessage(sid=msg.sid, status=msg.status, to=to, body=body)
        return None


class LocmemSmsBackend(SmsBackend):
    """Keeps sent messages in ``LocmemSmsBackend.outbox`` (per process), like Django's locmem mail."""

    outbox: list[dict] = []
    _lock = threading.Lock()

    def send(self, *, tenant, from_, to, body, status_callback=None):
        sent = SentMessage(sid=_fake_sid(), status="queued", to=to, body=body)
        with self._lock:
            self.outbox.append(
                {
                    "tenant": tenant.pk,
                    "from": from_,
                    "to": to,
                    "body": body,
                    "sid": sent.sid,
                    "at": datetime.now(tz=UTC),
                }
            )
        return sent

    def fetch(self, *, tenant, sid):
        for item in self.outbox:
            if item["sid"] == sid:
                return SentMessage(sid=sid, status="sent", to=item["to"], body=item["body"])
        raise LookupError(sid)

    def find_recent(self, *, tenant, from_, to, body, since=None, exclude=()):
        for item in reversed(self.outbox):
            if since is not None and item["at"] < since:
                break
            if (item["from"], item["to"], item["body"]) == (from_, to, body) and item["sid"] not in exclude:
                return SentMessage(sid=item["sid"], status="sent", to=to, body=body)
        return None


class ConsoleSmsBackend(LocmemSmsBackend):
    """Prints each message to stdout (and remembers it like locmem); the demo's default."""

    outbox: list[dict] = []

    def send(self, *, tenant, from_, to, body, status_callback=None):
        sent = super().send(tenant=tenant, from_=from_, to=to, body=body, status_callback=status_callback)
        sys.stdout.write(f"[sms {sent.sid}] {from_} → {to}: {body}\n")
        sys.stdout.flush()
        return sent


def get_sms_backend() -> SmsBackend:
    """An instance of ``settings.SMS_BACKEND``."""
    return import_string(settings.SMS_BACKEND)()
