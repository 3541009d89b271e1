"""Voice backends for outbound calls: ``TwilioVoiceBackend``, ``ConsoleVoiceBackend``, ``LocmemVoiceBackend``.

A call is placed with either the TwiML to run when it is answered (built with the twilio library's VoiceResponse)
or the ``url`` of a webhook that returns it, plus a status callback URL. With a ``url``, ``machine_detection``
(``Enable`` | ``DetectMessageEnd``, https://www.twilio.com/docs/voice/answering-machine-detection) makes Twilio
post ``AnsweredBy`` (human, machine_*, fax, unknown) to that webhook.

``end_call`` hangs a call up (https://www.twilio.com/docs/voice/api/call-resource#update-a-call-resource:
``Status=completed`` ends it whether it is still queued/ringing or already in progress; ``canceled`` would not
touch an answered call). A call that is already over counts as ended.

``delete_recording`` deletes a call or voicemail recording at the provider
(https://www.twilio.com/docs/voice/api/recording#delete-a-recording-resource: ``DELETE
/2010-04-01/Accounts/{AccountSid}/Recordings/{Sid}.json`` → 204). A recording that is not there (404) is already
gone: deleting it is then done.
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
from twilio.base.exceptions import TwilioRestException

from providers import ProviderPermanentError
from providers.twilio_client import translate_errors, twilio_client

#: Twilio's answers to an update of a call that is already over: 20404 (no such call, HTTP 404) and 21220
#: (invalid call state for the requested action, HTTP 400).
CALL_ALREADY_OVER_CODES = frozenset({20404, 21220})


@dataclass
class PlacedCall:
    """A call the provider accepted: its SID (``CA…``) and first status (``queued``)."""

    sid: str
    status: str
    to: str = ""


class VoiceBackend:
    """Interface of a voice provider."""

    def place_call(
        self,
        *,
        tenant,
        from_: str,
        to: str,
        twiml: str | None = None,
        status_callback: str | None = None,
        ring_timeout: int = 30,
        url: str | None = None,
        machine_detection: str | None = None,
    ) -> PlacedCall:
        """Dial ``to`` from ``from_``; when answered run ``twiml``, or fetch TwiML from ``url`` (exactly one of the
        two; ``machine_detection`` only with ``url``); ring for ``ring_timeout`` seconds.
        Raises ValueError on a bad combination, ProviderTransientError / ProviderPermanentError."""
        raise NotImplementedError

    def fetch(self, *, tenant, sid: str) -> PlacedCall:
        """Look a call up by SID."""
        raise NotImplementedError

    def find_recent(
        self, *, tenant, from_: str, to: str, since: datetime | None = None, exclude: Collection[str] = ()
    ) -> PlacedCall | None:
        """The most recent call from ``from_`` to ``to`` (reconciliation when no SID came back), created at or
        after ``since`` (aware) when given, whose SID is not in ``exclude`` (SIDs the caller already owns)."""
        raise NotImplementedError

    def end_call(self, *, tenant, sid: str) -> None:
        """Hang up call ``sid`` (``CA…``) whatever its state (queued, ringing, in progress). Returns normally
        once the provider accepted the request or said the call is already over or unknown (404): ending
        it is then done. Raises ProviderTransientError (429, 5xx, timeouts: retry) or ProviderPermanentError."""
        raise NotImplementedError

    def delete_recording(self, *, tenant, sid: str) -> bool:
        """Delete recording ``sid`` (``RE…``) from the tenant's account. True when this request deleted it, False
        when the provider had no such recording (404: already deleted). Raises ProviderTransientError (429, 5xx,
        timeouts: retry) or ProviderPermanentError (e.g. 401, wrong credentials)."""
        raise NotImplementedError


def _answer_kwargs(twiml: str | None, url: str | None, machine_detection: str | None) -> dict:
    """``{"twiml": …}`` or ``{"url": …[, "machine_detection": …]}``; ValueError unless exactly one is given."""
    if (twiml is None) == (url is None):
        raise ValueError("place_call needs exactly one of twiml or url")
    if machine_detection and url is None:
        raise ValueError("machine_detection needs a url (Twilio posts AnsweredBy to it)")
    if twiml is not None:
        return {"twiml": twiml}
    return {"url": url, **({"machine_detection": machine_detection} if machine_detection else {})}


class TwilioVoiceBackend(VoiceBackend):
    """Places calls through Twilio's Voice REST API with the tenant's credentials."""

    def place_call(
        self, *, tenant, from_, to, twiml=None, status_callback=None, ring_timeout=30, url=None, machine_detection=None
    ):
        kwargs = {"from_": from_, "to": to, "timeout": ring_timeout, **_answer_kwargs(twiml, url, machine_detection)}
        if status_callback:
            kwargs.update(
                status_callback=status_callback, status_callback_event=["initiated", "ringing", "answered", "completed"]
            )
        with translate_errors():
            call = twilio_client(tenant).calls.create(**kwargs)
        return PlacedCall(sid=call.sid, status=call.status, to=to)

    def fetch(self, *, tenant, sid):
        with translate_errors():
            call = twilio_client(tenant).calls(sid).fetch()
        return PlacedCall(sid=call.sid, status=call.status, to=call.to)

    def find_recent(self, *, tenant, from_, to, since=None, exclude=()):
        # Filtered on date_created here, not with StartTime>: a call still queued/ringing has no start_time
        # yet and would be missed — exactly the one an uncertain attempt just placed.
        with translate_errors():
            for call in twilio_client(tenant).calls.list(from_=from_, to=to, limit=20):
                if since is not None and call.date_created is not None and call.date_created < since:
                    continue  # Twilio sorts by DateSent / StartTime, not creation: no early exit
                if call.sid not in exclude:
                    return PlacedCall(sid=call.sid, status=call.status, to=to)
        return None

    def end_call(self, *, tenant, sid):
        with translate_errors():
            try:
                twilio_client(tenant).calls(sid).update(status="completed")
            except TwilioRestException as exc:
                if exc.status == 404 or exc.code in CALL_ALREADY_OVER_CODES:
                    return  # already over (or unknown): nothing left to hang up
                raise

    def delete_recording(self, *, tenant, sid):
        if not (tenant.twilio_account_sid and tenant.twilio_auth_token):
            raise ProviderPermanentError("the tenant has no Twilio credentials", code="no_credentials")
        with translate_errors():
            try:
                return bool(twilio_client(tenant).recordings(sid).delete())
            except TwilioRestException as exc:
                if exc.status == 404:
                    return False  # already gone
                raise


class LocmemVoiceBackend(VoiceBackend):
    """Keeps placed calls in ``LocmemVoiceBackend.calls`` and hang-up requests in ``.hangups`` (per process)."""

    calls: list[dict] = []
    hangups: list[dict] = []  # {"tenant", "sid", "known" (a call placed here), "at"}, one per end_call
    deleted_recordings: list[dict] = []  # {"tenant", "sid", "at"}, one per delete_recording
    _lock = threading.Lock()

    def place_call(
        self, *, tenant, from_, to, twiml=None, status_callback=None, ring_timeout=30, url=None, machine_detection=None
    ):
        answer = _answer_kwargs(twiml, url, machine_detection)
        placed = PlacedCall(sid="CA" + uuid.uuid4().hex, status="queued", to=to)
        with self._lock:
            self.calls.append(
                {
                    "tenant": tenant.pk,
                    "from": from_,
                    "to": to,
                    "twiml": answer.get("twiml"),
                    "url": answer.get("url"),
                    "machine_detection": answer.get("machine_detection"),
                    "status_callback": status_callback,
                    "sid": placed.sid,
                    "at": datetime.now(tz=UTC),
                }
            )
        return placed

    def fetch(self, *, tenant, sid):
        for item in self.calls:
            if item["sid"] == sid:
                return PlacedCall(sid=sid, status="queued", to=item["to"])
        raise LookupError(sid)

    def find_recent(self, *, tenant, from_, to, since=None, exclude=()):
        for item in reversed(self.calls):
            if since is not None and item["at"] < since:
                break
            if (item["from"], item["to"]) == (from_, to) and item["sid"] not in exclude:
                return PlacedCall(sid=item["sid"], status="queued", to=to)
        return None

    def end_call(self, *, tenant, sid):
        with self._lock:
            known = any(item["sid"] == sid for item in self.calls)
            self.hangups.append({"tenant": tenant.pk, "sid": sid, "known": known, "at": datetime.now(tz=UTC)})

    def delete_recording(self, *, tenant, sid):
        with self._lock:
            seen = any(item["sid"] == sid for item in self.deleted_recordings)
            self.deleted_recordings.append({"tenant": tenant.pk, "sid": sid, "at": datetime.now(tz=UTC)})
        return not seen


class ConsoleVoiceBackend(LocmemVoiceBackend):
    """Prints each call and its TwiML to stdout; the demo's default."""

    calls: list[dict] = []
    hangups: list[dict] = []
    deleted_recordings: list[dict] = []

    def place_call(
        self, *, tenant, from_, to, twiml=None, status_callback=None, ring_timeout=30, url=None, machine_detection=None
    ):
        placed = super().place_call(
            tenant=tenant,
            from_=from_,
            to=to,
            twiml=twiml,
            status_callback=status_callback,
            ring_timeout=ring_timeout,
            url=url,
            machine_detection=machine_detection,
        )
        answer = twiml if twiml is not None else f"url={url} machine_detection={machine_detection or '-'}"
        sys.stdout.write(f"[call {placed.sid}] {from_} → {to}: {answer}\n")
        sys.stdout.flush()
        return placed

    def end_call(self, *, tenant, sid):
        super().end_call(tenant=tenant, sid=sid)
        sys.stdout.write(f"[call {sid}] hung up\n")
        sys.stdout.flush()


def get_voice_backend() -> VoiceBackend:
    """An instance of ``settings.VOICE_BACKEND``."""
    return import_string(settings.VOICE_BACKEND)()
