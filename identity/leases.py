"""Claim → act → record → redrive: one worker at a time acts on a row, with no transaction across slow work.

Every slow step that must happen once (a provider request, an IMAP poll, an LLM turn, a webhook POST) runs
in three short steps, and a beat task catches the ones that died:

1. **claim** — one short committed write takes the row for ``lease`` (``lease_until = now + lease``) and a
   fresh fencing *token* (a random hex string, or an attempt counter bumped by the claim). Only a row that is
   unclaimed or whose lease is over (``lease_until <= now``) can be taken, so two workers never hold it at
   once; a claim over an expired lease is a *take-over* (``attempt`` + 1): its holder died, and may have acted.
2. **act** — outside any transaction, holding no row lock.
3. **record / release** — a compare-and-set write: ``UPDATE … WHERE token = ours``. A holder that outlived
   its lease and was taken over writes nothing (the live holder's outcome decides); it learns so from the
   row count.
4. **redrive** — a beat task re-queues the rows still to do that hold no live claim (:func:`due`).

Lease length: longer than its holder can live, so that a live lease means "someone may still be acting" and
an expired one "its holder is dead". A Celery task holds it for the task's hard time limit plus :data:`SKEW`
(:func:`task_lease`); a provider request for its connect and read timeouts plus :data:`SKEW`
(:func:`request_lease`).

:data:`SKEW` is the one clock margin: how far apart the clocks of our hosts, the database and a provider may
be. It pads leases, and it widens "what did an earlier attempt create at the provider since it claimed?"
look-ups (``since = claimed_at - SKEW``).

A claim lives either in columns (``lease_until`` and a token column: :func:`claim`, :func:`record`,
:func:`release`, :func:`due`; a few rows store the claim's start instead, ``claimed_at``: :func:`live_since`,
:func:`due_since`) or inside a JSON column, as a *mark* ``{"attempt": n, "token": hex,
"lease_until": ISO-8601 UTC}`` at some key (:func:`mark_claim`, :func:`mark_held`, :func:`mark_live`,
:func:`mark_lease_until_sql` for redrive queries). Callers write the mark themselves, under the row lock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import DateTimeField, Model, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

#: The one clock-skew margin (hosts, database, providers; NTP keeps them far closer): pads leases and
#: provider look-ups (Twilio's ``date_created`` has whole seconds).
SKEW = timedelta(seconds=10)

M = TypeVar("M", bound=Model)


def task_lease(hard_limit_seconds: float | None = None) -> timedelta:
    """The lease of a claim held by a Celery task: its hard time limit (``hard_limit_seconds``, default
    ``settings.CELERY_TASK_TIME_LIMIT``, 120 s when unset), after which the worker child is killed, plus
    :data:`SKEW`."""
    limit = hard_limit_seconds or getattr(settings, "CELERY_TASK_TIME_LIMIT", None) or 120
    return timedelta(seconds=float(limit)) + SKEW


def request_lease(timeout_seconds: float) -> timedelta:
    """The lease of a claim held for one provider request whose connect and read are each bounded by
    ``timeout_seconds`` (requests' timeout): twice that, plus :data:`SKEW`."""
    return timedelta(seconds=2 * float(timeout_seconds)) + SKEW


def new_token() -> str:
    """A fresh fencing token: 32 hex characters."""
    return uuid.uuid4().hex


def is_live(lease_until: datetime | None, now: datetime) -> bool:
    """True while a lease ending at ``lease_until`` (aware, or None: unclaimed) still holds at ``now``."""
    return lease_until is not None and lease_until > now


def live_since(claimed_at: datetime | None, lease: timedelta, now: datetime) -> bool:
    """True while a claim taken at ``claimed_at`` (None: unclaimed) for ``lease`` still holds at ``now``."""
    return claimed_at is not None and is_live(claimed_at + lease, now)


def free(field: str, now: datetime) -> Q:
    """The condition "no live claim" on the lease column ``field`` (may span a relation: NULL is free)."""
    return Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lte": now})


def due(qs: QuerySet[M], now: datetime, *, field: str = "lease_until") -> QuerySet[M]:
    """The redrive shape: rows of ``qs`` that hold no live claim at ``now`` (never claimed, or expired)."""
    return qs.filter(free(field, now))


def claim(
    qs: QuerySet[M],
    *,
    now: datetime,
    lease: timedelta,
    field: str = "lease_until",
    token_field: str = "lease_token",
    **also: Any,
) -> str | None:
    """Claim the row(s) of ``qs`` that hold no live claim, in one ``UPDATE`` (atomic on its own): set ``field``
    to ``now + lease``, ``token_field`` to a fresh token, and the columns in ``also``. Returns the token, or
    None when nothing was free (a live claim, or no such row)."""
    token = new_token()
    taken = due(qs, now, field=field).update(**{field: now + lease, token_field: token}, **also)
    return token if taken else None


def record(qs: QuerySet[M], token: object, *, token_field: str = "lease_token", **fields: Any) -> bool:
    """Compare-and-set: write ``fields`` to the row(s) of ``qs`` whose ``token_field`` still equals ``token``
    (a token string, or the attempt number of an attempt counter). False: the claim was taken over."""
    return bool(qs.filter(**{token_field: token}).update(**fields))


def release(
    qs: QuerySet[M], token: object, *, field: str = "lease_until", token_field: str = "lease_token", **also: Any
) -> bool:
    """End our claim on ``qs`` (``field`` NULL, ``token_field`` empty, plus ``also``) if it is still ours."""
    return record(qs, token, token_field=token_field, **{field: None, token_field: ""}, **also)


def due_since(qs: QuerySet[M], now: datetime, lease: timedelta, *, field: str = "claimed_at") -> QuerySet[M]:
    """:func:`due` for rows that store when they were claimed (``field``) rather than when the lease ends."""
    return qs.filter(free(field, now - lease))


# --- claims held in a JSON column --------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkClaim:
    """A claim held as a JSON mark: write :attr:`mark` at its key (under the row lock) and commit.
    ``taken_over`` is True when an earlier claim had expired there (its holder may have acted)."""

    attempt: int
    token: str
    lease_until: datetime
    taken_over: bool

    @property
    def mark(self) -> dict[str, Any]:
        """``{"attempt": n, "token": hex, "lease_until": ISO-8601 UTC}``."""
        return {"attempt": self.attempt, "token": self.token, "lease_until": self.lease_until.isoformat()}


def mark_lease_until(mark: Any) -> datetime | None:
    """The end of the lease in ``mark`` (None: no mark, or one without a readable ``lease_until``)."""
    try:
        return datetime.fromisoformat(mark["lease_until"])
    except (KeyError, TypeError, ValueError):
        return None


def mark_live(mark: Any, now: datetime) -> bool:
    """True when ``mark`` holds a lease still live at ``now`` (an unreadable mark is not live)."""
    return is_live(mark_lease_until(mark), now)


def mark_claim(mark: Any, *, now: datetime, lease: timedelta) -> MarkClaim | None:
    """Claim over the current ``mark`` (None or ``{}`` when unclaimed): None while it is live, else a
    :class:`MarkClaim` with ``attempt`` one past the mark's (1 when there was none) and a fresh token."""
    if mark_live(mark, now):
        return None
    previous = mark.get("attempt") if isinstance(mark, dict) else None
    return MarkClaim(attempt=int(previous or 0) + 1, token=new_token(), lease_until=now + lease, taken_over=bool(mark))


def mark_held(mark: Any, token: str) -> bool:
    """True when ``mark`` is still the claim that got ``token`` (compare-and-set under the row lock)."""
    return isinstance(mark, dict) and mark.get("token") == token


def mark_lease_until_sql(path: str) -> Cast:
    """SQL of a mark's ``lease_until`` at the JSON key path ``path`` (``"triage__claim"``), as a timestamp
    (NULL when unclaimed); annotate it and filter with :func:`free` for a redrive query."""
    return Cast(KT(f"{path}__lease_until"), DateTimeField())
