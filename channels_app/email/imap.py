"""The IMAP poller (``imap-tools``): new messages of a tenant's mailbox go to the ingest service, each once.

UID-based (RFC 3501 §2.3.1.1): the mailbox row stores ``uidvalidity`` and ``last_uid``. A poll asks the server
for UIDs above ``last_uid``, reads each message with ``BODY.PEEK`` (the clinic's unread flags are untouched)
and ingests it in the same transaction that advances ``last_uid`` — so a crash before the commit re-reads the
message and one after it never does; nothing is skipped and nothing is processed twice. If the server's
UIDVALIDITY changes, old UIDs mean nothing: the folder is rescanned from the day before the last poll and
already-seen messages are recognised by Message-ID. A message larger than ``EMAIL_INBOUND_MAX_BYTES`` is not
downloaded (its size comes from ``RFC822.SIZE``); it is stored as rejected from its headers. No bad message
stops the poller: messages are fetched and ingested one at a time; parsing problems become rejected rows, and a
message whose fetch or ingest fails for any other reason is quarantined (kept raw, the admins alerted, see
:mod:`channels_app.email.quarantine`) and the watermark moves past it. Only connection problems and transient
database errors end a poll (recorded in ``last_error``, retried at the next beat) without moving it.
"""

from __future__ import annotations

import imaplib
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted, MailMessage

from channels_app.email.quarantine import email_ingest_or_quarantine, email_quarantine
from channels_app.models import EmailMailbox, InboundEmail
from conversations.webhooks.ssrf import _is_public as is_public_address
from identity import leases

logger = logging.getLogger(__name__)


class RawMailMessage(MailMessage):
    """imap-tools' message that also keeps the exact bytes the server sent."""

    def __init__(self, fetch_data: list) -> None:
        super().__init__(fetch_data)
        self.raw = self._get_message_data_parts(fetch_data)[0]


@dataclass
class PollResult:
    """What one poll did: ``ingested`` UIDs (with their outcome), whether the watermark was ``reset``."""

    polled: bool = False
    outcomes: dict[int, str] = field(default_factory=dict)
    reset: bool = False
    error: str = ""


class UnsafeImapServer(Exception):
    """The mailbox's IMAP host/port/security may not be used (an internal address, an odd port, cleartext)."""


def _allowed_private(host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    for entry in settings.EMAIL_IMAP_ALLOWED_PRIVATE_HOSTS:
        entry = entry.strip().lower()
        if entry == host.lower():
            return True
        try:
            if entry and ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def imap_server_check(mailbox: EmailMailbox, *, resolver=socket.getaddrinfo) -> None:
    """Refuse (:class:`UnsafeImapServer`) what tenant staff could use to make the poller probe our network:
    a port other than ``EMAIL_IMAP_ALLOWED_PORTS`` (143/993), a host resolving to any non-public address
    (conversations.webhooks.ssrf's rules) or cleartext (``none``) unless the host is listed in
    ``EMAIL_IMAP_ALLOWED_PRIVATE_HOSTS`` (names, IPs or CIDRs; local test servers)."""
    if mailbox.imap_port not in settings.EMAIL_IMAP_ALLOWED_PORTS:
        raise UnsafeImapServer(f"IMAP port {mailbox.imap_port} is not allowed (use 993 or 143)")
    try:
        infos = resolver(mailbox.imap_host, mailbox.imap_port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeImapServer(f"cannot resolve {mailbox.imap_host}") from exc
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    internal = [ip for ip in addresses if not is_public_address(ip)]
    if any(not _allowed_private(mailbox.imap_host, ip) for ip in internal):
        raise UnsafeImapServer(f"{mailbox.imap_host} resolves to a non-public address")
    if mailbox.imap_security == EmailMailbox.Security.NONE and not (
        addresses and all(_allowed_private(mailbox.imap_host, ip) for ip in addresses)
    ):
        raise UnsafeImapServer("cleartext IMAP is only allowed to EMAIL_IMAP_ALLOWED_PRIVATE_HOSTS")


def _ssl_context() -> ssl.SSLContext:
    """Certificate and host name verification on (Python's imaplib does neither without a context)."""
    return ssl.create_default_context(cafile=settings.EMAIL_IMAP_CA_FILE or None)


def _connect(mailbox: EmailMailbox):
    imap_server_check(mailbox)
    timeout = settings.EMAIL_IMAP_TIMEOUT_SECONDS
    if mailbox.imap_security == EmailMailbox.Security.SSL:
        client = MailBox(mailbox.imap_host, mailbox.imap_port, timeout=timeout, ssl_context=_ssl_context())
    elif mailbox.imap_security == EmailMailbox.Security.STARTTLS:
        client = MailBoxStartTls(mailbox.imap_host, mailbox.imap_port, timeout=timeout, ssl_context=_ssl_context())
    else:
        client = MailBoxUnencrypted(mailbox.imap_host, mailbox.imap_port, timeout=timeout)
    client.email_message_class = RawMailMessage
    return client.login(mailbox.imap_username, mailbox.imap_password, initial_folder=mailbox.imap_folder)


def _claim(mailbox_id: int, now: datetime) -> str | None:
    """Lease the enabled mailbox for one poll (:mod:`identity.leases`; held by a task): its token, or None."""
    return leases.claim(EmailMailbox.objects.filter(pk=mailbox_id, enabled=True), now=now, lease=leases.task_lease())


def _advance(mailbox_id: int, token: str, **fields) -> None:
    """Write watermark fields if we still hold the lease (else raise: another poller took over)."""
    if not leases.record(EmailMailbox.objects.filter(pk=mailbox_id), token, **fields):
        raise RuntimeError("lost the mailbox lease")


def _sync_validity(mailbox: EmailMailbox, token: str, status: dict, result: PollResult) -> tuple[int, str]:
    """Return ``(last_uid, search)`` after reconciling the stored UIDVALIDITY with the server's."""
    validity = int(status["UIDVALIDITY"])
    if mailbox.uidvalidity is None:
        start = 0 if mailbox.initial_sync == EmailMailbox.InitialSync.ALL else int(status["UIDNEXT"]) - 1
        _advance(mailbox.pk, token, uidvalidity=validity, last_uid=max(0, start))
        return max(0, start), "ALL"
    if mailbox.uidvalidity != validity:
        since = (mailbox.last_polled_at or timezone.now()) - timedelta(days=1)
        logger.warning(
            "mailbox %s: UIDVALIDITY changed (%s → %s); rescanning since %s",
            mailbox.address,
            mailbox.uidvalidity,
            validity,
            since.date(),
        )
        _advance(mailbox.pk, token, uidvalidity=validity, last_uid=0)
        result.reset = True
        return 0, f"SINCE {since:%d-%b-%Y}"
    return mailbox.last_uid, "ALL"


def mailbox_poll(*, mailbox_id: int, limit: int | None = None) -> PollResult:
    """Poll one mailbox once: ingest up to ``limit`` (``EMAIL_IMAP_BATCH``) new messages in UID order."""
    result = PollResult()
    now = timezone.now()
    token = _claim(mailbox_id, now)
    if token is None:
        return result  # disabled, unknown, or another poll holds the lease
    mailbox = EmailMailbox.objects.select_related("tenant").get(pk=mailbox_id)
    result.polled = True
    limit = limit or settings.EMAIL_IMAP_BATCH
    try:
        with _connect(mailbox) as client:
            status = client.folder.status(mailbox.imap_folder, ["UIDVALIDITY", "UIDNEXT"])
            last_uid, search = _sync_validity(mailbox, token, status, result)
            found = sorted(int(u) for u in client.uids(search if search != "ALL" else f"UID {last_uid + 1}:*"))
            found = [u for u in found if u > last_uid]
            uids = found[:limit]
            sizes = (
                {
                    int(m.uid): m.size_rfc822
                    for m in client.fetch(
                        uid_list=[str(u) for u in uids], headers_only=True, mark_seen=False, bulk=True
                    )
                }
                if uids
                else {}
            )
            for uid in uids:
                result.outcomes[uid] = _ingest_one(client, mailbox, token, uid, sizes.get(uid, 0))
            if result.reset and len(found) <= limit:
                # The SINCE rescan is complete: everything below UIDNEXT is either ingested now or older than
                # the rescan window. Without this floor an empty rescan leaves last_uid=0 and the next poll
                # (UID 1:*) would re-import the whole mailbox.
                floor = max(int(status["UIDNEXT"]) - 1, uids[-1] if uids else 0)
                _advance(mailbox.pk, token, last_uid=floor)
        _advance(mailbox_id, token, last_polled_at=timezone.now(), last_error="")
    except DatabaseError:
        raise  # transient (others quarantine the message): the task fails, the next poll retries the message
    except Exception as exc:  # noqa: BLE001 - connection / auth / protocol errors: record, retry next beat
        result.error = f"{type(exc).__name__}: {exc}"[:500]
        logger.warning("polling mailbox %s failed: %s", mailbox.address, result.error)
        leases.record(EmailMailbox.objects.filter(pk=mailbox_id), token, last_error=result.error)
    finally:
        leases.release(EmailMailbox.objects.filter(pk=mailbox_id), token)
    return result


#: What a fetch can fail with that is the connection's problem, not the message's: end the poll, retry later.
CONNECTION_ERRORS = (OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error)


def _ingest_one(client, mailbox: EmailMailbox, token: str, uid: int, size: int) -> str:
    """Fetch (unless oversize) and ingest one UID, advancing ``last_uid`` in the same transaction; a message
    that cannot be fetched or ingested is quarantined and the watermark still moves past it."""
    oversize = size > settings.EMAIL_INBOUND_MAX_BYTES
    try:
        fetched = list(client.fetch(uid_list=[str(uid)], headers_only=oversize, mark_seen=False))
    except CONNECTION_ERRORS:
        raise
    except Exception as exc:  # imap-tools could not read this message's FETCH response
        logger.exception("fetching UID %s of %s failed", uid, mailbox.address)
        with transaction.atomic():
            outcome = email_quarantine(
                raw=b"",
                source=InboundEmail.Source.IMAP,
                mailbox=mailbox,
                size=size,
                imap_uid=uid,
                reason=f"unreadable at the IMAP server: {type(exc).__name__}: {exc}",
            )
            _advance(mailbox.pk, token, last_uid=uid)
        return outcome.status
    if not fetched:  # expunged between SEARCH and FETCH
        _advance(mailbox.pk, token, last_uid=uid)
        return "gone"
    raw = fetched[0].raw
    with transaction.atomic():
        outcome = email_ingest_or_quarantine(
            raw=raw, source=InboundEmail.Source.IMAP, mailbox=mailbox, size=size or len(raw), imap_uid=uid
        )
        _advance(mailbox.pk, token, last_uid=uid)
    return "duplicate" if outcome.duplicate else outcome.status
