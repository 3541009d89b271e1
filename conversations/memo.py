"""A per-turn memo: the same read (a tenant's agent settings, its state TTL) runs once per agent turn.

Scoped, never shared: :func:`turn_memo` opens an empty store for the duration of one turn (a ``ContextVar``, so
a thread or task sees only its own) and drops it when the turn ends; outside a turn :func:`memoized` simply
calls the loader. Keys always carry the tenant id, so one turn can never be handed another tenant's value.
Nested ``turn_memo`` blocks share the outer store. Values are read-only snapshots for the turn: a write that
must be seen within the same turn is not to be memoized.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_store: ContextVar[dict[Hashable, Any] | None] = ContextVar("conversations_turn_memo", default=None)


@contextmanager
def turn_memo() -> Iterator[None]:
    """Memoize :func:`memoized` reads until the block ends (re-entrant: an inner block uses the outer store)."""
    if _store.get() is not None:
        yield
        return
    token = _store.set({})
    try:
        yield
    finally:
        _store.reset(token)


def memoized(kind: str, tenant_id: Any, load: Callable[[], T]) -> T:
    """``load()`` once per ``(kind, tenant_id)`` within the current :func:`turn_memo`; every call outside one."""
    store = _store.get()
    if store is None:
        return load()
    key = (kind, str(tenant_id))
    if key not in store:
        store[key] = load()
    return store[key]
