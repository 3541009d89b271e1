"""Reading an RFC 5322 message: ids for threading, addresses, text, sanitised HTML, attachments, auto-replies.

Parsing uses the standard library (``email.policy.default``). Rules taken from the RFCs and from what mail
clients do in practice:

- Message ids (RFC 5322 §3.6.4): ``Message-ID``, ``In-Reply-To`` and ``References`` hold ``<id@host>`` tokens;
  we keep them with their angle brackets. A message without a ``Message-ID`` gets a stable synthetic one
  (SHA-256 of its bytes) so a redelivery is still recognised.
- Automatic mail (never answered, RFC 3834 §5): ``Auto-Submitted`` other than ``no``; ``Precedence`` ``bulk``,
  ``junk`` or ``list``; ``X-Autoreply`` / ``X-Autorespond`` / ``X-Auto-Response-Suppress``-style vendor
  headers; ``List-Id`` / ``List-Unsubscribe`` (mailing lists); delivery status notifications
  (RFC 3464: ``multipart/report; report-type=delivery-status``); a null or ``MAILER-DAEMON`` / ``postmaster``
  sender.
- HTML is cleaned with ``nh3`` (Rust ``ammonia``): no scripts, styles, event handlers, images or non-http(s)
  links survive.
- Every string handed on has the characters PostgreSQL refuses (NUL, e.g. a quoted-printable ``=00``, and lone
  surrogates) replaced (:mod:`providers.text`); the original bytes stay in the raw store.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr

import nh3

from channels_app.email.authres import sender_authenticated
from identity.normalize import normalize_email
from providers.text import pg_clean, pg_text

_MSGID = re.compile(r"<[^<>\s]+>")
_AUTO_SENDERS = re.compile(r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?)([+\-@]|$)", re.I)
_ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img"}
_BLOCK_BREAKS = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h[1-6])\b[^>]*>", re.I)


class MalformedEmail(ValueError):
    """The bytes are not a usable email (unparsable, or no sender address)."""


@dataclass
class Attachment:
    """One attachment: ``filename`` (may be empty), ``content_type``, decoded ``payload`` bytes, ``inline``."""

    filename: str
    content_type: str
    payload: bytes
    inline: bool = False


@dataclass
class ParsedEmail:
    """What the channel needs from one message. Addresses are lower-cased; ids keep their ``<…>``."""

    message_id: str
    in_reply_to: list[str]
    references: list[str]
    from_address: str
    from_name: str
    recipients: list[str]
    subject: str
    text: str
    html: str
    attachments: list[Attachment] = field(default_factory=list)
    auto_reason: str = ""
    dsn_message_ids: list[str] = field(default_factory=list)
    has_text_part: bool = True
    sender_authenticated: bool = False  # our trusted MTA vouches for From (channels_app.email.authres)

    @property
    def is_automatic(self) -> bool:
        return bool(self.auto_reason)

    @property
    def thread_ids(self) -> list[str]:
        """In-Reply-To first, then References newest first: the order threading tries them."""
        return list(dict.fromkeys([*self.in_reply_to, *reversed(self.references)]))


def message_ids(value: str | None) -> list[str]:
    """All ``<id>`` tokens of a header value, in order (empty list for None or junk)."""
    return _MSGID.findall(str(value or ""))[:100]


def to_message(raw: bytes | Message) -> EmailMessage:
    """Parse bytes (or re-parse a compat32 ``Message``, e.g. anymail's) into a ``policy.default`` message."""
    if isinstance(raw, EmailMessage) and raw.policy is policy.default:
        return raw
    data = raw if isinstance(raw, bytes | bytearray) else raw.as_bytes()
    try:
        return BytesParser(policy=policy.default).parsebytes(bytes(data))
    except Exception as exc:
        raise MalformedEmail(f"unparsable message ({type(exc).__name__})") from exc


def _header(msg: EmailMessage, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - a header the policy cannot decode is treated as absent
        return ""
    return str(value or "").strip()


def _addresses(msg: EmailMessage, *names: str) -> list[str]:
    values = [_header(msg, n) for n in names]
    found = []
    for _, address in getaddresses([v for v in values if v]):
        normalised = normalize_email(address)
        if normalised:
            found.append(normalised)
    return list(dict.fromkeys(found))


def _decode(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, AssertionError, KeyError):
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", errors="replace")
    return content if isinstance(content, str) else content.decode("utf-8", errors="replace")


def sanitize_html(value: str) -> str:
    """``value`` cleaned by nh3: safe tags only, no images, scripts, styles, handlers or ``javascript:`` links."""
    return nh3.clean(
        value or "",
        tags=_ALLOWED_TAGS,
        url_schemes={"http", "https", "mailto"},
        clean_content_tags={"script", "style"},
        link_rel="noopener noreferrer nofollow",
    )


def html_to_text(value: str, *, drop_quotes: bool = False) -> str:
    """Visible text of an HTML body (tags removed by nh3, entities decoded); optionally without blockquotes."""
    marked = _BLOCK_BREAKS.sub(lambda m: m.group(0) + "\n", value or "")
    stripped = nh3.clean(
        marked,
        tags=set(),
        attributes={},
        clean_content_tags={"script", "style", "head", "title"} | ({"blockquote"} if drop_quotes else set()),
    )
    text = html_lib.unescape(stripped)
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t\r\f\v]+\n", "\n", text)).strip()


def _auto_reason(msg: EmailMessage, from_address: str) -> str:
    auto = _header(msg, "Auto-Submitted").lower()
    if auto and not auto.startswith("no"):
        return f"Auto-Submitted: {auto[:40]}"
    precedence = _header(msg, "Precedence").lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply"):
        if _header(msg, name):
            return f"{name} header"
    if "oof" in _header(msg, "X-Auto-Response-Suppress").lower() and _header(msg, "X-MS-Exchange-Generated-Message"):
        return "Exchange automatic reply"
    if _header(msg, "List-Id") or _header(msg, "List-Unsubscribe"):
        return "mailing list"
    if msg.get_content_type() == "multipart/report" or msg.get_param("report-type", "", header="content-type"):
        return "delivery status notification"
    return_path = _header(msg, "Return-Path")
    if return_path.replace(" ", "") == "<>":
        return "null return path (bounce)"
    if _AUTO_SENDERS.match(from_address):
        return f"automatic sender {from_address}"
    return ""


def _dsn_ids(msg: EmailMessage) -> list[str]:
    """Message-IDs of the original message(s) a bounce reports (its message/rfc822 or rfc822-headers part)."""
    ids: list[str] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            try:
                if ctype == "message/rfc822":
                    inner = part.get_payload()[0] if part.is_multipart() else part.get_content()
                    ids += message_ids(inner.get("Message-ID"))
                else:
                    found = re.search(r"^Message-ID:\s*(.+)$", _decode(part), re.I | re.M)
                    ids += message_ids(found.group(1) if found else "")
            except Exception:  # noqa: BLE001 - a broken bounce only loses the status update
                continue
    return list(dict.fromkeys(ids))


def parse(raw: bytes | Message) -> ParsedEmail:
    """Parse one RFC 5322 message; raises :class:`MalformedEmail` when it is unusable."""
    data = raw if isinstance(raw, bytes | bytearray) else None
    msg = to_message(raw)
    from_name, from_raw = parseaddr(_header(msg, "From"))
    from_address = normalize_email(from_raw) or ""
    if not from_address:
        raise MalformedEmail("no usable From address")
    auto = _auto_reason(msg, from_address)
    message_id = next(iter(message_ids(_header(msg, "Message-ID"))), "")
    if not message_id:
        digest = hashlib.sha256(bytes(data) if data is not None else msg.as_bytes()).hexdigest()[:40]
        message_id = f"<sha256.{digest}@callsphere.invalid>"
    try:
        text_part = msg.get_body(preferencelist=("plain",))
        html_part = msg.get_body(preferencelist=("html",))
        text = _decode(text_part) if text_part is not None else ""
        html = _decode(html_part) if html_part is not None else ""
        attachments = []
        if not auto or msg.get_content_type() != "multipart/report":
            for part in msg.iter_attachments():
                if part.get_content_maintype() in ("multipart", "message"):
                    continue
                payload = part.get_payload(decode=True) or b""
                attachments.append(
                    Attachment(
                        filename=pg_text((part.get_filename() or "")[:200]),
                        content_type=pg_text(part.get_content_type()[:127]),
                        payload=payload,
                        inline=(part.get_content_disposition() == "inline"),
                    )
                )
    except MalformedEmail:
        raise
    except Exception as exc:
        raise MalformedEmail(f"unreadable MIME structure ({type(exc).__name__})") from exc
    has_text_part = bool(text.strip())
    if not has_text_part and html:
        text = html_to_text(html)
    return ParsedEmail(
        message_id=pg_text(message_id[:255]),
        in_reply_to=pg_clean(message_ids(_header(msg, "In-Reply-To"))),
        references=pg_clean(message_ids(_header(msg, "References"))),
        from_address=pg_text(from_address),
        from_name=pg_text((from_name or "")[:200]),
        recipients=pg_clean(_addresses(msg, "Delivered-To", "X-Original-To", "To", "Cc", "Envelope-To")),
        subject=pg_text(_header(msg, "Subject")[:255]),
        text=pg_text(text),
        html=pg_text(sanitize_html(html)) if html else "",
        attachments=attachments,
        auto_reason=pg_text(auto),
        dsn_message_ids=pg_clean(_dsn_ids(msg)) if msg.get_content_type() == "multipart/report" else [],
        has_text_part=has_text_part,
        sender_authenticated=sender_authenticated(msg, from_address),
    )
