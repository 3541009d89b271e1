"""Writes to conversations, ``call_logs`` and session state. Every channel adapter goes through these."""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from conversations.memo import memoized
from conversations.models import (
    MESSAGE_STATUS_RANK,
    ChannelMessage,
    Conversation,
    Direction,
    Interaction,
    SessionState,
)
from conversations.signals import conversation_closed, customer_message_received, interaction_closed
from identity.models import Customer, Tenant
from identity.services import customer_pre_merge

logger = logging.getLogger(__name__)


def _now(at: datetime | None) -> datetime:
    return at or timezone.now()


def conversation_get_or_open(*, tenant: Tenant, customer: Customer, at: datetime | None = None) -> Conversation:
    """Return the customer's open conversation, opening one if there is none (race-safe by constraint).

    A new conversation takes over the unexpired session state of the customer's closed ones (newest value per
    key, its ``expires_at`` unchanged): a conversation closes after the tenant's quiet period (24 h by default)
    but what the patient was doing — a pending booking, their name, an unfinished intake — lives for the state
    TTL (30 days), so "Welcome back — you were booking for Tuesday" still works a week later.
    """
    return _conversation_get_or_create(tenant=tenant, customer=customer, at=_now(at))[0]


def _conversation_get_or_create(
    *, tenant: Tenant, customer: Customer, at: datetime, read_first: bool = True
) -> tuple[Conversation, bool]:
    """:func:`conversation_get_or_open` returning ``(conversation, created)``; ``created`` means this
    transaction inserted the row (no other one can see, lock or close it before this one commits). With
    ``read_first=False`` (the caller has just found none) it tries the insert first."""
    for attempt in range(3):
        if read_first or attempt:
            existing = Conversation.objects.filter(customer=customer, status=Conversation.Status.OPEN).first()
            if existing:
                return existing, False
        try:
            with transaction.atomic():
                conversation = Conversation.objects.create(
                    tenant=tenant, customer=customer, opened_at=at, last_activity_at=at
                )
                _state_carry_over(conversation=conversation, at=at)
                return conversation, True
        except IntegrityError:
            continue  # another process opened it first
    raise RuntimeError("could not open a conversation")


def _conversation_open_locked(*, tenant: Tenant, customer: Customer, at: datetime) -> Conversation | None:
    """The customer's open conversation, locked (``FOR UPDATE``) for the caller's transaction, opening one if
    there is none; None when the one found was closed before it could be locked (``close_idle``): call again.

    One statement on the usual path: ``SELECT … WHERE status = 'open' FOR UPDATE`` re-checks the status on
    the row it waited for (PostgreSQL re-evaluates the condition on the newest row version under READ
    COMMITTED), so a conversation closed meanwhile is not returned. Only a conversation another process opened
    between that read and our insert is re-read under the lock."""
    open_ = Conversation.objects.filter(customer=customer, status=Conversation.Status.OPEN)
    if locked := open_.select_for_update().first():
        return locked
    conversation, created = _conversation_get_or_create(tenant=tenant, customer=customer, at=at, read_first=False)
    if created:
        return conversation
    return open_.select_for_update().filter(pk=conversation.pk).first()


def _state_carry_over(*, conversation: Conversation, at: datetime) -> int:
    """Move the unexpired state of the customer's closed conversations to ``conversation`` (the newest row per
    key); returns how many rows moved. Older duplicates stay behind and expire with their conversation."""
    newest = (
        SessionState.objects.filter(
            conversation__customer_id=conversation.customer_id,
            conversation__status=Conversation.Status.CLOSED,
            expires_at__gt=at,
        )
        .order_by("key", "-updated_at", "-pk")
        .distinct("key")
        .values_list("pk", flat=True)
    )
    return SessionState.objects.filter(pk__in=list(newest)).update(conversation=conversation)


def interaction_close(
    *, interaction: Interaction, at: datetime | None = None, only_if_idle_since: datetime | None = None
) -> bool:
    """Close an open interaction (set ``ended_at``) and, on commit, queue its enrichment.

    Returns False if it was already closed (closing twice is a no-op) or, with ``only_if_idle_since``, if it
    had activity at or after that moment (re-checked under the row lock, so a turn that lands while the idle
    sweeper runs keeps its session open). ``ended_at`` is the later of ``at`` and the last activity (UTC).
    """
    at = _now(at)
    with transaction.atomic():
        row = Interaction.objects.select_for_update().get(pk=interaction.pk)
        if row.ended_at is not None:
            return False
        if only_if_idle_since is not None and row.last_activity_at >= only_if_idle_since:
            return False
        row.ended_at = max(at, row.last_activity_at)
        row.save(update_fields=["ended_at", "updated_at"])
        interaction.ended_at = row.ended_at
        transaction.on_commit(lambda: interaction_closed.send(sender=Interaction, interaction_id=row.pk), robust=True)
    return True


def session_open(
    *,
    tenant: Tenant,
    customer: Customer,
    channel: str,
    direction: str = Direction.INBOUND,
    at: datetime | None = None,
    idle_window: timedelta | None = None,
    metadata: dict | None = None,
) -> tuple[Interaction, bool]:
    """Return the open ``call_logs`` row for this customer and channel, or open one; ``(interaction, created)``.

    Uses the customer's open conversation (opening one if needed). If the open row has been idle longer than
    ``idle_window`` it is closed (and enriched) and a new row opens in the same conversation. Concurrent
    callers serialise on the conversation row, and a partial unique constraint allows one open row per
    conversation and channel.
    """
    at = _now(at)
    for _ in range(3):
        # no savepoint: nothing here is caught and recovered (an error leaves the caller's transaction as it
        # would leave this one); the conversation insert keeps its own, for the race it recovers from
        with transaction.atomic(savepoint=False):
            conversation = _conversation_open_locked(tenant=tenant, customer=customer, at=at)
            if conversation is None:
                continue  # close_idle closed it between the read and the lock: open the next one
            current = Interaction.objects.filter(
                conversation=conversation, channel=channel, ended_at__isnull=True
            ).first()
            if current and idle_window is not None and current.last_activity_at < at - idle_window:
                interaction_close(interaction=current, at=current.last_activity_at)
                current = None
            if current:
                return current, False
            interaction = Interaction.objects.create(
                tenant=tenant,
                customer=customer,
                conversation=conversation,
                channel=channel,
                direction=direction,
                started_at=at,
                last_activity_at=at,
                metadata=metadata or {},
            )
            return interaction, True
    raise RuntimeError("could not open a session: its conversation kept closing")


def conversation_lock(*, conversation_id) -> None:
    """Lock one conversation row (inside the caller's transaction): taken before any of its interactions'
    rows, so every writer locks in the same order (see :func:`interaction_append_turn`)."""
    Conversation.objects.select_for_update().filter(pk=conversation_id).values_list("pk", flat=True).first()


def interaction_append_turn(
    *,
    interaction: Interaction,
    role: str,
    text: str,
    at: datetime | None = None,
    workflow_drop: list[str] | None = None,
    **extra: Any,
) -> dict:
    """Append ``{"role", "text", "at", **extra}`` to the transcript; bump activity times.

    One statement, ``UPDATE call_logs SET transcript = transcript || [turn]``: the row lock lasts only for that
    statement (or the caller's transaction) and the transcript is never read back into Python and rewritten, so
    concurrent appends cannot lose a turn. The conversation's ``last_activity_at`` is bumped after commit, in
    its own statement, so this service never holds a ``call_logs`` row while waiting for a conversation row —
    the webhook locks conversation → call_logs, and a caller holding the call_logs row (the reply worker) must
    not then wait for the conversation (that was the webhook/worker deadlock). Returns the turn as stored;
    ``at`` is UTC (ISO-8601 in the stored turn). ``workflow_drop``: a ``workflow`` key path the same statement
    removes (see :func:`_append`).
    """
    at = _now(at)
    turn = {"role": role, "text": text, "at": at.isoformat(), **extra}
    if not _append(interaction, turn, at, workflow_drop=workflow_drop):
        raise Interaction.DoesNotExist(f"call_logs row {interaction.pk} is gone")
    return turn


def interaction_append_turn_once(
    *, interaction: Interaction, ref: str, role: str, text: str, at: datetime | None = None, **extra: Any
) -> dict | None:
    """:func:`interaction_append_turn` of ``{"role", "text", "at", "ref": ref, **extra}`` unless a turn with this
    ``ref`` is already in the transcript (a replayed webhook); returns the turn, or None when it was there.

    One statement on the usual path, ``UPDATE … WHERE NOT transcript @> [{"ref": ref}]`` (the check and the
    append under the statement's row lock, so two replays cannot both append). Only when nothing was appended is
    the row read, to give ``interaction`` the stored transcript (``Interaction.DoesNotExist`` if it is gone).
    """
    at = _now(at)
    turn = {"role": role, "text": text, "at": at.isoformat(), "ref": ref, **extra}
    if _append(interaction, turn, at, unless_ref=ref):
        return turn
    stored = Interaction.objects.filter(pk=interaction.pk).values_list("transcript", flat=True).first()
    if stored is None:
        raise Interaction.DoesNotExist(f"call_logs row {interaction.pk} is gone")
    interaction.transcript = stored
    return None


def _append(
    interaction: Interaction,
    turn: dict,
    at: datetime,
    *,
    unless_ref: str | None = None,
    workflow_drop: list[str] | None = None,
) -> bool:
    """Append ``turn`` in one ``UPDATE … RETURNING`` (see :func:`interaction_append_turn`); with ``unless_ref``
    only if no stored turn has that ``ref``; with ``workflow_drop`` (a key path, e.g. ``["claims", "SM…"]``)
    the same statement removes that path from ``workflow`` (nothing when absent). Sets
    ``interaction.transcript`` / ``last_activity_at`` from the row and queues the conversation's activity bump
    on commit; False when no row was written."""
    guard = drop = ""
    params: list[Any] = [json.dumps([turn], cls=DjangoJSONEncoder), at, timezone.now()]
    if workflow_drop:
        drop = ", workflow = CASE WHEN jsonb_typeof(workflow) = 'object' THEN workflow #- %s::text[] ELSE workflow END"
        params.append(list(workflow_drop))
    params.append(interaction.pk)
    if unless_ref is not None:
        guard = " AND NOT COALESCE(transcript, '[]'::jsonb) @> %s::jsonb"
        params.append(json.dumps([{"ref": unless_ref}]))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Interaction._meta.db_table} SET transcript = transcript || %s::jsonb,"
            f" last_activity_at = GREATEST(last_activity_at, %s), updated_at = %s{drop}"
            f" WHERE id = %s{guard} RETURNING transcript, last_activity_at",
            params,
        )
        row = cursor.fetchone()
    if row is None:
        return False
    transcript, last_activity_at = row
    interaction.transcript = json.loads(transcript) if isinstance(transcript, str) else transcript
    interaction.last_activity_at = last_activity_at
    conversation_id = interaction.conversation_id
    transaction.on_commit(
        lambda: Conversation.objects.filter(pk=conversation_id, last_activity_at__lt=at).update(last_activity_at=at)
    )
    return True


def _merge_json(interaction: Interaction, field: str, updates: dict) -> dict:
    """One statement, ``UPDATE call_logs SET <field> = <field or {}> || updates RETURNING <field>``:
    top-level keys of ``updates`` replace the stored ones (``None`` stores JSON null, as before) without reading
    the row into Python first, so two writers merging different keys never lose one. Raises
    ``Interaction.DoesNotExist`` when the row is gone."""
    column = {"metadata": "metadata", "workflow": "workflow"}[field]  # fixed names, never user input
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Interaction._meta.db_table} SET {column} = CASE WHEN jsonb_typeof({column}) = 'object'"
            f" THEN {column} ELSE '{{}}'::jsonb END || %s::jsonb,"
            " updated_at = %s WHERE id = %s RETURNING " + column,
            [json.dumps(updates, cls=DjangoJSONEncoder), timezone.now(), interaction.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise Interaction.DoesNotExist(f"call_logs row {interaction.pk} is gone")
    merged = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    setattr(interaction, field, merged)
    return merged


def interaction_set_metadata(*, interaction: Interaction, updates: dict) -> dict:
    """Merge ``updates`` into ``interaction.metadata`` (top-level keys) under a row lock; return the result.
    ``metadata`` is exported: channel facts only (MessageSid, CallSid, statuses, how a call ended)."""
    return _merge_json(interaction, "metadata", updates)


def interaction_set_workflow(*, interaction: Interaction, updates: dict) -> dict:
    """Merge ``updates`` into ``interaction.workflow`` (top-level keys) under a row lock; return the result.
    ``workflow`` holds a channel's in-flight state (claims, markers, leases) and is never exported."""
    return _merge_json(interaction, "workflow", updates)


def interaction_mark_escalated(*, interaction: Interaction) -> None:
    """Set ``escalated`` on an interaction (idempotent)."""
    Interaction.objects.filter(pk=interaction.pk, escalated=False).update(escalated=True, updated_at=timezone.now())
    interaction.escalated = True


@dataclass
class Received:
    """Result of :func:`message_receive`: ``duplicate`` is True when the provider id was already stored."""

    message: ChannelMessage
    interaction: Interaction
    duplicate: bool


def message_receive(
    *,
    tenant: Tenant,
    customer: Customer,
    channel: str,
    provider_id: str,
    sender: str,
    recipient: str,
    text: str,
    at: datetime | None = None,
    idle_window: timedelta | None = None,
    turn_extra: dict | None = None,
) -> Received:
    """Record one inbound provider message as a customer turn, exactly once per ``(channel, provider_id)``.

    Opens or continues the channel session (see :func:`session_open`), stores a :class:`ChannelMessage` and
    appends the turn, all in one transaction; on commit ``customer_message_received`` is sent (with the
    conversation, the tenant's id and ``tenant`` itself, so its receivers read nothing back). A repeated provider
    id (a webhook retry) writes nothing and returns the first message with ``duplicate=True``.
    """
    at = _now(at)
    existing = ChannelMessage.objects.filter(tenant=tenant, channel=channel, provider_id=provider_id).select_related(
        "interaction"
    )
    if first := existing.first():
        return Received(message=first, interaction=first.interaction, duplicate=True)
    try:
        with transaction.atomic():
            interaction, _ = session_open(
                tenant=tenant, customer=customer, channel=channel, at=at, idle_window=idle_window
            )
            message = ChannelMessage.objects.create(
                tenant=tenant,
                interaction=interaction,
                channel=channel,
                direction=Direction.INBOUND,
                provider_id=provider_id,
                sender=sender,
                recipient=recipient,
                body=text,
                status=ChannelMessage.Status.RECEIVED,
                status_updated_at=at,
            )
            interaction_append_turn(
                interaction=interaction, role="customer", text=text, at=at, ref=provider_id, **(turn_extra or {})
            )
    except IntegrityError:
        first = existing.first()
        if first is None:
            raise
        return Received(message=first, interaction=first.interaction, duplicate=True)
    transaction.on_commit(
        lambda: customer_message_received.send(
            sender=Interaction,
            interaction_id=interaction.pk,
            message_id=message.pk,
            text=text,
            conversation_id=interaction.conversation_id,
            tenant_id=tenant.pk,
            tenant=tenant,
        ),
        robust=True,
    )
    return Received(message=message, interaction=interaction, duplicate=False)


def message_prepare_outbound(
    *,
    interaction: Interaction,
    sender: str,
    recipient: str,
    body: str,
    idempotency_key: str,
    role: str = "agent",
    transcript_text: str | None = None,
    turn_extra: dict | None = None,
    expect_new: bool = False,
    workflow_drop: list[str] | None = None,
) -> tuple[ChannelMessage, bool]:
    """Create the pending outbound message and its transcript turn once per ``idempotency_key``.

    Returns ``(message, created)``; a second call with the same key returns the first row untouched. The
    provider send happens afterwards (see the channel's delivery service), which fills in ``provider_id``.
    ``transcript_text`` is what the transcript records instead of ``body`` when the body holds a secret (a
    one-time code): transcripts leave through the API, webhooks, the warehouse and the LLM. ``turn_extra`` adds
    keys to the turn (a staff message: ``staff_user_id``, ``staff_name``). ``expect_new``: the caller has just
    seen no row with this key and recovers a conflict itself: the row is not read first and no savepoint is
    taken, so a row created meanwhile raises ``IntegrityError`` and spoils the caller's transaction (roll it
    back, then read the row). ``workflow_drop``: a ``workflow`` key path removed by the statement that appends the turn (only
    when the row is created).
    """
    existing = ChannelMessage.objects.filter(tenant_id=interaction.tenant_id, idempotency_key=idempotency_key)
    if not expect_new and (first := existing.first()):
        return first, False
    try:
        with nullcontext() if expect_new else transaction.atomic():
            message = ChannelMessage.objects.create(
                tenant_id=interaction.tenant_id,
                interaction=interaction,
                channel=interaction.channel,
                direction=Direction.OUTBOUND,
                idempotency_key=idempotency_key,
                sender=sender,
                recipient=recipient,
                body=body,
                status=ChannelMessage.Status.PENDING,
            )
            interaction_append_turn(
                interaction=interaction,
                role=role,
                ref=idempotency_key,
                text=body if transcript_text is None else transcript_text,
                workflow_drop=workflow_drop,
                **(turn_extra or {}),
            )
    except IntegrityError:
        if expect_new:
            raise
        return existing.get(), False
    return message, True


def _status_allows(rank: dict[str, int], new_rank: int, column: str) -> tuple[str, list[Any]]:
    """SQL condition (and its parameters) true when ``column``'s status ranks below ``new_rank`` in ``rank``
    (a status missing from ``rank`` ranks 0), i.e. when Python's ``rank.get(status, 0) < new_rank``."""
    if new_rank > 0:  # unknown statuses rank 0 < new_rank: allowed unless they rank too high
        return f"NOT ({column} = ANY(%s))", [[s for s, r in rank.items() if r >= new_rank]]
    return f"{column} = ANY(%s)", [[s for s, r in rank.items() if r < new_rank]]


def _mirror_status(*, interaction_id, provider_id: str, direction: str, status: str, at: datetime) -> None:
    """Set ``metadata["messages"][provider_id] = {"direction", "status", "at"}`` of one ``call_logs`` row in one
    ``UPDATE`` (a jsonb merge, the row never read into Python); the statement holds the row's lock to commit."""
    entry = json.dumps({provider_id: {"direction": direction, "status": status, "at": at.isoformat()}})
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Interaction._meta.db_table} SET metadata = jsonb_set(COALESCE(metadata, '{{}}'::jsonb),"
            " '{messages}', COALESCE(metadata -> 'messages', '{}'::jsonb) || %s::jsonb), updated_at = %s"
            " WHERE id = %s",
            [entry, timezone.now(), interaction_id],
        )


def message_status_update(
    *,
    channel: str,
    provider_id: str,
    status: str,
    error_code: str = "",
    error_message: str = "",
    at: datetime | None = None,
    tenant: Tenant | None = None,
    rank: dict[str, int] | None = None,
) -> bool:
    """Move a provider message's status forward (``MESSAGE_STATUS_RANK``); never backwards.

    A late ``sent`` after ``delivered`` is ignored, as are unknown statuses. Returns True if stored. Also
    mirrors the status into the interaction's ``metadata["messages"][provider_id]``. ``tenant``, when given,
    scopes the lookup (a callback can only touch its own tenant's messages). ``rank`` replaces
    ``MESSAGE_STATUS_RANK`` for a channel with its own statuses (e.g. Twilio call statuses).

    Two statements: a conditional ``UPDATE … RETURNING`` of the message (the first by id with this provider id;
    the rank check is in its ``WHERE``, re-evaluated under the row lock, so two callbacks cannot move it
    backwards) and the metadata mirror (:func:`_mirror_status`); both rows stay locked to the caller's commit,
    message first, then ``call_logs``.
    """
    at = _now(at)
    rank = rank or MESSAGE_STATUS_RANK
    new_rank = rank.get(status)
    if new_rank is None:
        logger.warning("ignoring unknown message status %r for %s", status, provider_id)
        return False
    table = ChannelMessage._meta.db_table
    allows, allow_params = _status_allows(rank, new_rank, "status")
    sets: list[str] = ["status = %s", "status_updated_at = %s"]
    params: list[Any] = [status, at]
    if error_code:
        sets += ["error_code = %s", "error_message = %s"]
        params += [str(error_code)[:20], error_message[:500]]
    scope, scope_params = ("AND tenant_id = %s", [tenant.pk]) if tenant is not None else ("", [])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {', '.join(sets)} WHERE id = (SELECT id FROM {table} WHERE channel = %s"
            f" AND provider_id = %s {scope} ORDER BY id LIMIT 1) AND {allows} RETURNING interaction_id, direction",
            [*params, channel, provider_id, *scope_params, *allow_params],
        )
        row = cursor.fetchone()
        if row is None:
            return False
        interaction_id, direction = row
        _mirror_status(
            interaction_id=interaction_id, provider_id=provider_id, direction=direction, status=status, at=at
        )
    return True


def message_mark_sent(
    *, message: ChannelMessage, provider_id: str, status: str, only_unsent: bool = False, also: str = ""
) -> bool:
    """Store the provider id a pending outbound message got from the provider, and its first status (when it
    ranks above the stored one in ``MESSAGE_STATUS_RANK``, mirrored into the interaction's metadata as
    :func:`message_status_update` does). ``message``'s ``provider_id``, ``status`` and ``status_updated_at`` are
    set from what was stored; returns True when written.

    ``only_unsent`` writes only a row still ``pending`` without a provider id (checked under the row lock) and
    returns False otherwise, instead of raising ``ChannelMessage.DoesNotExist`` for a missing row. ``also``: one
    more data-modifying statement (fixed SQL from the caller, never user input) run in the same statement, which
    may read ``m`` (the written row, ``id``), e.g. the delivery's ``in_flight`` cleared only when it was written.

    One statement: the row locked (``old``), updated, and the metadata mirror written from what the update
    returned (data-modifying CTEs), locking message then ``call_logs``, in that order.
    """
    at = timezone.now()
    new_rank = MESSAGE_STATUS_RANK.get(status)
    allows: str
    allow_params: list[Any]
    if new_rank is None:
        logger.warning("ignoring unknown message status %r for %s", status, provider_id)
        allows, allow_params = "false", []
    else:
        allows, allow_params = _status_allows(MESSAGE_STATUS_RANK, new_rank, "old.status")
    table = ChannelMessage._meta.db_table
    unsent = " AND status = %s AND provider_id = ''" if only_unsent else ""
    unsent_params = [ChannelMessage.Status.PENDING] if only_unsent else []
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH old AS (SELECT id, status FROM {table} WHERE id = %s{unsent} FOR UPDATE),"
            f" m AS (UPDATE {table} AS m SET provider_id = %s,"
            f" status = CASE WHEN {allows} THEN %s ELSE m.status END,"
            f" status_updated_at = CASE WHEN {allows} THEN %s ELSE m.status_updated_at END"
            f" FROM old WHERE m.id = old.id"
            f" RETURNING m.id, m.status, m.status_updated_at, m.interaction_id, m.direction, {allows} AS moved),"
            f" mirror AS (UPDATE {Interaction._meta.db_table} AS i SET metadata = jsonb_set("
            "COALESCE(i.metadata, '{}'::jsonb), '{messages}', COALESCE(i.metadata -> 'messages', '{}'::jsonb)"
            " || jsonb_build_object(%s::text, jsonb_build_object('direction', m.direction, 'status', %s::text,"
            " 'at', %s::text))), updated_at = %s FROM m WHERE i.id = m.interaction_id AND m.moved)"
            + (f", also AS ({also})" if also else "")
            + " SELECT status, status_updated_at, interaction_id, direction, moved FROM m",
            [
                message.pk,
                *unsent_params,
                provider_id,
                *allow_params,
                status,
                *allow_params,
                at,
                *allow_params,
                provider_id,
                status,
                at.isoformat(),
                timezone.now(),
            ],
        )
        row = cursor.fetchone()
    if row is None:
        if only_unsent:
            return False
        raise ChannelMessage.DoesNotExist(f"message {message.pk} is gone")
    message.provider_id = provider_id
    message.status, message.status_updated_at = row[0], row[1]
    return True


def message_mark_failed(*, message: ChannelMessage, status: str, error_code: str = "", error_message: str = "") -> None:
    """Mark a pending outbound message as ``failed`` or ``suppressed`` (opt-out) with the reason."""
    ChannelMessage.objects.filter(pk=message.pk, status=ChannelMessage.Status.PENDING).update(
        status=status,
        error_code=str(error_code)[:20],
        error_message=error_message[:500],
        status_updated_at=timezone.now(),
    )
    message.refresh_from_db(fields=["status", "error_code", "error_message", "status_updated_at"])


def call_open(
    *,
    tenant: Tenant,
    customer: Customer,
    sender: str,
    recipient: str,
    status: str,
    call_sid: str = "",
    idempotency_key: str = "",
    direction: str = Direction.INBOUND,
    at: datetime | None = None,
    metadata: dict | None = None,
) -> Received:
    """Open the ``call_logs`` row of one phone call, exactly once per ``call_sid`` (or ``idempotency_key``).

    The DB-level guard is a :class:`ChannelMessage` (channel ``voice``, ``provider_id`` = Twilio's CallSid,
    ``status`` = the call status) — or, for a call we are about to place and whose SID is not known yet, one
    with ``idempotency_key`` (status ``pending``; :func:`message_mark_sent` adds the SID). The row opens in the
    customer's open conversation; a voice row of that conversation still open from an earlier call (its
    completion callback never came) is closed first, so each call is its own row. No turn is appended.
    A repeated CallSid / key writes nothing and returns the first call with ``duplicate=True``.
    Raises ``ValueError`` unless exactly one of ``call_sid`` and ``idempotency_key`` is given.
    """
    if bool(call_sid) == bool(idempotency_key):
        raise ValueError("give exactly one of call_sid and idempotency_key")
    at = _now(at)
    existing = ChannelMessage.objects.filter(tenant=tenant).select_related("interaction")
    existing = (
        existing.filter(channel="voice", provider_id=call_sid)
        if call_sid
        else existing.filter(idempotency_key=idempotency_key)
    )
    if first := existing.first():
        return Received(message=first, interaction=first.interaction, duplicate=True)
    try:
        with transaction.atomic():
            for _ in range(3):  # the open conversation, locked (None: closed by close_idle before the lock)
                if conversation := _conversation_open_locked(tenant=tenant, customer=customer, at=at):
                    break
            else:
                raise RuntimeError("could not open a call: its conversation kept closing")
            if first := existing.first():  # created while we waited for the lock
                return Received(message=first, interaction=first.interaction, duplicate=True)
            for stale in Interaction.objects.filter(conversation=conversation, channel="voice", ended_at__isnull=True):
                interaction_close(interaction=stale)
            interaction = Interaction.objects.create(
                tenant=tenant,
                customer=customer,
                conversation=conversation,
                channel="voice",
                direction=direction,
                started_at=at,
                last_activity_at=at,
                metadata={"call_sid": call_sid, **(metadata or {})},
            )
            message = ChannelMessage.objects.create(
                tenant=tenant,
                interaction=interaction,
                channel="voice",
                direction=direction,
                provider_id=call_sid,
                idempotency_key=idempotency_key,
                sender=sender,
                recipient=recipient,
                status=status,
                status_updated_at=at,
            )
    except IntegrityError:
        first = existing.first()
        if first is None:
            raise
        return Received(message=first, interaction=first.interaction, duplicate=True)
    return Received(message=message, interaction=interaction, duplicate=False)


def interaction_set_assessment(
    *, interaction: Interaction, urgency: int | None = None, intent: str | None = None
) -> None:
    """Store a channel's live assessment: ``urgency`` (1–5, only ever raised) and/or ``intent`` (≤ 64 chars).

    Used by the voice agent (every turn) and the voicemail analyzer; enrichment may overwrite both when the
    row closes.

    One ``UPDATE … RETURNING urgency, intent`` (no read-modify-write): ``updated_at`` moves only when a value
    changes. Raises ``Interaction.DoesNotExist`` when the row is gone. No statement at all when ``interaction``
    as loaded already holds them (urgency at least ``urgency``, the same intent): urgency is only raised here,
    so the stored one is at least the loaded one (enrichment, which may lower it, runs when the row closes).
    """
    if _assessment_held(interaction, urgency=urgency, intent=intent):
        return
    table = Interaction._meta.db_table
    sets: list[str] = []
    changed: list[str] = []
    params: list[Any] = []
    cond_params: list[Any] = []
    if urgency is not None:
        sets.append("urgency = CASE WHEN COALESCE(urgency, 0) < %s THEN %s ELSE urgency END")
        params += [urgency, max(1, min(5, int(urgency)))]
        changed.append("COALESCE(urgency, 0) < %s")
        cond_params.append(urgency)
    if intent is not None:
        sets.append("intent = CASE WHEN intent IS DISTINCT FROM %s THEN %s ELSE intent END")
        params += [intent, intent[:64]]
        changed.append("intent IS DISTINCT FROM %s")
        cond_params.append(intent)
    with connection.cursor() as cursor:
        if sets:
            cursor.execute(
                f"UPDATE {table} SET {', '.join(sets)}, updated_at = CASE WHEN {' OR '.join(changed)} THEN %s"
                " ELSE updated_at END WHERE id = %s RETURNING urgency, intent",
                [*params, *cond_params, timezone.now(), interaction.pk],
            )
        else:
            cursor.execute(f"SELECT urgency, intent FROM {table} WHERE id = %s", [interaction.pk])
        row = cursor.fetchone()
    if row is None:
        raise Interaction.DoesNotExist(f"call_logs row {interaction.pk} is gone")
    interaction.urgency, interaction.intent = row


def _assessment_held(interaction: Interaction, *, urgency: int | None, intent: str | None) -> bool:
    """True when ``interaction``'s loaded (not deferred) ``urgency`` / ``intent`` already hold what
    :func:`interaction_set_assessment` would store (and something was asked)."""
    if (urgency is None and intent is None) or interaction.pk is None:
        return False
    deferred = interaction.get_deferred_fields()
    if urgency is not None and ("urgency" in deferred or (interaction.urgency or 0) < urgency):
        return False
    return intent is None or ("intent" not in deferred and interaction.intent == intent[:64])


def callback_request_set_status(*, callback_request_id: int, status: str, only_from: tuple[str, ...]) -> bool:
    """Move a :class:`~conversations.models.CallbackRequest` to ``status`` if it is in one of ``only_from``
    (e.g. ``requested`` → ``in_progress`` when the voice channel dials); returns True if it changed."""
    from conversations.models import CallbackRequest

    return bool(
        CallbackRequest.objects.filter(pk=callback_request_id, status__in=only_from).update(
            status=status, updated_at=timezone.now()
        )
    )


# --- session state ------------------------------------------------------------------------------------------


def state_set(*, conversation: Conversation, key: str, value: Any, at: datetime | None = None) -> SessionState:
    """Store ``value`` (JSON-serialisable) under ``key``; it expires after the tenant's ``state_ttl``.

    One ``INSERT … ON CONFLICT (conversation, key) DO UPDATE`` (``state_key_once``), not a savepoint, a locked read
    and an update: two writers of one key both land, the last one wins, as before.
    """
    at = _now(at)
    tenant_id = conversation.tenant_id
    ttl = memoized("state_ttl", tenant_id, lambda: Tenant.objects.values_list("state_ttl", flat=True).get(pk=tenant_id))
    state = SessionState(conversation=conversation, key=key, value=value, updated_at=at, expires_at=at + ttl)
    SessionState.objects.bulk_create(
        [state],
        update_conflicts=True,
        unique_fields=["conversation", "key"],
        update_fields=["value", "updated_at", "expires_at"],
    )
    return state


def state_delete(*, conversation: Conversation, keys: list[str] | None = None) -> int:
    """Delete some (``keys``) or all state of a conversation; returns the number of rows deleted."""
    qs = SessionState.objects.filter(conversation=conversation)
    if keys is not None:
        qs = qs.filter(key__in=keys)
    return qs.delete()[0]


def state_purge_expired(*, at: datetime | None = None, limit: int = 5000) -> int:
    """Retention: delete expired session state (never read after ``expires_at``), at most ``limit`` rows a call."""
    ids = list(SessionState.objects.filter(expires_at__lte=_now(at)).values_list("pk", flat=True)[:limit])
    return SessionState.objects.filter(pk__in=ids).delete()[0] if ids else 0


def conversation_close(
    *, conversation: Conversation, at: datetime | None = None, only_if_idle_since: datetime | None = None
) -> bool:
    """Close a conversation and its open interactions; emits ``conversation_closed`` on commit.

    The close is a fenced state change under the conversation's row lock (the lock :func:`session_open` takes
    before adding a session): of two closers (the beat task and ``manage.py close_idle``, say) exactly one finds
    it open, so the signal — and ``conversation.closed`` behind it — goes out once. With ``only_if_idle_since``
    it also requires no activity at or after that moment, on the conversation or any of its interactions (a
    message that lands while the sweeper runs keeps the conversation open), and its open interactions end at
    their last activity. Returns False if nothing closed.
    """
    at = _now(at)
    with transaction.atomic():
        rows = Conversation.objects.filter(pk=conversation.pk, status=Conversation.Status.OPEN)
        last_activity = rows.select_for_update().values_list("last_activity_at", flat=True).first()
        if last_activity is None:
            return False  # closed already (by whoever held the lock before us)
        if only_if_idle_since is not None and (
            last_activity >= only_if_idle_since
            or Interaction.objects.filter(conversation=conversation, last_activity_at__gte=only_if_idle_since).exists()
        ):
            return False  # a message arrived meanwhile; checked under the row lock session_open also takes
        rows.update(status=Conversation.Status.CLOSED, closed_at=at)
        conversation.status, conversation.closed_at = Conversation.Status.CLOSED, at
        for interaction in Interaction.objects.filter(conversation=conversation, ended_at__isnull=True):
            ends = interaction.last_activity_at if only_if_idle_since is not None else at
            interaction_close(interaction=interaction, at=ends)
        transaction.on_commit(
            lambda: conversation_closed.send(sender=Conversation, conversation_id=conversation.pk), robust=True
        )
    return True


def close_idle(*, now: datetime | None = None, close_all: bool = False) -> dict[str, int]:
    """Close sessions idle past their window and conversations quiet past the tenant's quiet period.

    A session's window is the tenant's ``sms_idle_window`` (used for every channel's idle close); a
    conversation's is ``conversation_quiet_period`` (24 h by default), after which ``conversation.closed`` goes
    out to webhooks. Its session state is not deleted: the customer's next conversation takes it over
    (:func:`conversation_get_or_open`) until the state TTL. ``now`` (UTC) is injectable for tests and
    backfills. With ``close_all`` every open session and conversation is closed. Returns ``{"interactions": n,
    "conversations": m}``.
    """
    now = _now(now)
    closed = {"interactions": 0, "conversations": 0}
    open_rows = Interaction.objects.filter(ended_at__isnull=True)
    if not close_all:  # served by the partial index call_logs_open (last_activity_at WHERE ended_at IS NULL)
        open_rows = open_rows.filter(last_activity_at__lt=now - F("tenant__sms_idle_window"))
    for interaction in (
        open_rows.select_related("tenant")
        .only("id", "last_activity_at", "tenant__sms_idle_window")
        .iterator(chunk_size=500)
    ):
        if close_all:
            closed["interactions"] += interaction_close(interaction=interaction, at=now)
        else:  # the session ended with its last activity; skip it if a turn arrived meanwhile
            closed["interactions"] += interaction_close(
                interaction=interaction,
                at=interaction.last_activity_at,
                only_if_idle_since=now - interaction.tenant.sms_idle_window,
            )
    open_conversations = Conversation.objects.filter(status=Conversation.Status.OPEN)
    if close_all:
        for conversation in open_conversations.iterator(chunk_size=500):
            closed["conversations"] += conversation_close(conversation=conversation, at=now)
        return closed
    quiet = open_conversations.filter(last_activity_at__lt=now - F("tenant__conversation_quiet_period"))
    for conversation in (
        quiet.select_related("tenant").only("id", "tenant__conversation_quiet_period").iterator(chunk_size=500)
    ):
        closed["conversations"] += conversation_close(
            conversation=conversation,
            at=now,
            only_if_idle_since=now - conversation.tenant.conversation_quiet_period,
        )
    return closed


def _close_open_conversation_before_merge(sender, *, survivor: Customer, merged: Customer, **kwargs) -> None:
    """Keep "one open conversation per customer" true across a merge: the merged one's open thread closes."""
    if Conversation.objects.filter(customer=survivor, status=Conversation.Status.OPEN).exists():
        for conversation in Conversation.objects.filter(customer=merged, status=Conversation.Status.OPEN):
            conversation_close(conversation=conversation)


customer_pre_merge.connect(_close_open_conversation_before_merge, dispatch_uid="conversations.pre_merge")
