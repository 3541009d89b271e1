"""Text PostgreSQL can store, made at every channel's edge (SMS / voice webhooks, chat frames, email).

PostgreSQL ``text`` (and ``jsonb`` strings) cannot hold NUL (U+0000), and UTF-8 has no encoding for lone
surrogates (U+D800–U+DFFF, e.g. a JSON ``"\\ud800"`` or bytes decoded with ``surrogateescape``): either makes
the insert fail, and the message would be lost with a 500. Each such character becomes U+FFFD (the
replacement character), so what was there stays visible; the original bytes are kept where there is a raw
store (inbound email's ``raw_path``).
"""

from __future__ import annotations

import re
from typing import Any

from django.http import QueryDict

_REFUSED = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def pg_text(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced by U+FFFD (unchanged, and not copied, when clean)."""
    return _REFUSED.sub(REPLACEMENT, value) if value and _REFUSED.search(value) else value


def pg_clean(value: Any) -> Any:
    """:func:`pg_text` applied to every string in ``value`` (dict keys and values, list/tuple items)."""
    if isinstance(value, str):
        return pg_text(value)
    if isinstance(value, dict):
        return {pg_clean(k): pg_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(pg_clean(v) for v in value)
    return value


def pg_querydict(data: QueryDict) -> QueryDict:
    """An immutable copy of ``data`` (e.g. ``request.POST``) with every key and value cleaned."""
    if not any(_REFUSED.search(k) or any(_REFUSED.search(v) for v in vs) for k, vs in data.lists()):
        return data
    clean = QueryDict(mutable=True)
    for key, values in data.lists():
        clean.setlist(pg_text(key), [pg_text(v) for v in values])
    clean._mutable = False
    return clean
