"""A local stub of the HTTP services the voice channel talks to, on 127.0.0.1 (tests only).

- Twilio recording media: ``GET /2010-04-01/Accounts/{AccountSid}/Recordings/{RecordingSid}.mp3`` (HTTP basic
  auth with the account SID and auth token, https://www.twilio.com/docs/voice/api/recording#fetch-a-recording-media-file)
  → the audio bytes registered with :meth:`VoiceStub.add_recording`; 401 on wrong credentials, 404 if unknown.
- Twilio calls: ``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` → 201 call (``CA…``, status ``queued``).
- OpenAI-compatible: ``POST /v1/audio/transcriptions`` (multipart; ``model``, ``file``) → ``{"text": …}`` looked up
  by the uploaded bytes; ``POST /v1/chat/completions`` → a structured-output completion with :attr:`scores`.

Every request is recorded in :attr:`VoiceStub.requests` as ``{"method", "path", "auth", "body"}``.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class VoiceStub:
    def __init__(self):
        self.requests: list[dict] = []
        self.recordings: dict[str, tuple[bytes, tuple[str, str]]] = {}
        self.transcripts: dict[bytes, str] = {}
        self.calls: list[dict] = []
        self.scores = {"sentiment": -0.6, "intent": "other", "lead_score": 5, "satisfaction": 2, "urgency": 1}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> VoiceStub:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_recording(self, *, account_sid: str, auth_token: str, recording_sid: str, audio: bytes, text: str) -> None:
        self.recordings[f"/2010-04-01/Accounts/{account_sid}/Recordings/{recording_sid}.mp3"] = (
            audio,
            (account_sid, auth_token),
        )
        self.transcripts[audio] = text

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self, body: bytes) -> str:
                auth = self.headers.get("Authorization", "")
                stub.requests.append(
                    {"method": self.command, "path": urlparse(self.path).path, "auth": auth, "body": body}
                )
                return auth

            def do_GET(self):
                auth = self._record(b"")
                found = stub.recordings.get(urlparse(self.path).path)
                if found is None:
                    return self._reply(404, b'{"code": 20404, "message": "not found", "status": 404}')
                audio, (user, password) = found
                if auth != "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode():
                    return self._reply(401, b'{"code": 20003, "message": "Authenticate", "status": 401}')
                self._reply(200, audio, "audio/mpeg")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._record(body)
                path = urlparse(self.path).path
                if path == "/v1/audio/transcriptions":
                    text = next((t for audio, t in stub.transcripts.items() if audio in body), "")
                    return self._reply(200, json.dumps({"text": text}).encode())
                if path == "/v1/chat/completions":
                    return self._reply(
                        200,
                        json.dumps(
                            {
                                "id": "chatcmpl-stub",
                                "object": "chat.completion",
                                "created": 0,
                                "model": "stub-model",
                                "choices": [
                                    {
                                        "index": 0,
                                        "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": json.dumps(stub.scores)},
                                    }
                                ],
                            }
                        ).encode(),
                    )
                if path.endswith("/Calls.json"):
                    params = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
                    call = {
                        "sid": "CA" + uuid.uuid4().hex,
                        "status": "queued",
                        "to": params.get("To"),
                        "from": params.get("From"),
                        "twiml": params.get("Twiml", ""),
                        "status_callback": params.get("StatusCallback", ""),
                    }
                    stub.calls.append(call)
                    return self._reply(201, json.dumps(call).encode())
                self._reply(404, b"{}")

        return Handler
