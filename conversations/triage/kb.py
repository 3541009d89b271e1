"""The triage knowledge base: versioned TOML files in ``conversations/triage/kb/`` loaded into typed rules.

``core.toml`` holds the language-neutral part (categories with level, reply kind and public source; numeric
thresholds); ``<lang>.toml`` holds one language's red-flag patterns, ConText rules, number words, intents and
safety replies. Patterns are regular expressions over :func:`conversations.triage.text.normalise`'d text;
``<<NAME>>`` expands a macro of the same file. Adding a language is adding a file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

KB_DIR = Path(__file__).with_name("kb")
_MACRO = re.compile(r"<<([A-Z][A-Z0-9_]*)>>")


@dataclass(frozen=True)
class Category:
    """A red-flag code: ``level`` (``emergency`` | ``urgent``), safety ``reply`` kind, public ``source``; see
    :mod:`conversations.triage.model` for ``model_may_doubt``."""

    code: str
    level: str
    reply: str
    source: str
    model_may_doubt: bool = True  # False: the learned model never turns this category's rule hit into urgent
    # True: a sign, not a cause (unresponsive, breathing, bleeding): when the rules found only such signs and
    # the learned model is confident of a specific category, the result names the model's category
    general_sign: bool = False
    # the family a data set's label belongs to (e.g. hypoglycaemia and hyperglycaemia_dka: "diabetic"), for
    # the family-aware code accuracy of the evaluation; defaults to the code itself
    family: str = ""


@dataclass(frozen=True)
class FlagRule:
    """Patterns of one category in one language; ``requires`` must also match somewhere in the message;
    ``with_`` (TOML ``with``) likewise, but the co-occurring sign is itself judged by ConText: "severe belly
    pain, no vomiting" has no live vomiting, so a rule "severe belly pain with vomiting" does not fire;
    ``mild`` lets words such as "a little" next to the flag make it urgent instead of an emergency;
    ``ignore_recent`` keeps "yesterday" from softening it (after surgery or a fall the danger sign is now);
    ``unless`` (anywhere in the message) explains the flag away: a goodbye from someone who is moving house."""

    code: str
    patterns: tuple[str, ...]
    requires: re.Pattern | None = None
    mild: bool = False
    ignore_recent: bool = False
    with_: re.Pattern | None = None
    unless: re.Pattern | None = None


@dataclass(frozen=True)
class ContextRule:
    """A medspaCy ConText rule: ``category`` (NEGATED_EXISTENCE, HISTORICAL, …), ``direction``, ``max_scope``;
    ``excluded_types``: red-flag codes it never modifies ("I just came to" ends a faint, not the assault)."""

    category: str
    direction: str
    patterns: tuple[str, ...]
    max_scope: int | None = None
    terminated_by: tuple[str, ...] = ()
    excluded_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class Language:
    """Everything triage knows about one language."""

    code: str
    markers: frozenset[str]
    number_words: dict[str, int]
    flags: tuple[FlagRule, ...]
    context: tuple[ContextRule, ...]
    numbers: dict[str, object]
    intents: tuple[tuple[str, re.Pattern], ...]
    replies: dict[str, str]
    not_urgent: re.Pattern


@dataclass(frozen=True)
class KnowledgeBase:
    """The loaded knowledge base: ``version``, ``categories`` by code, ``languages`` by ISO 639-1 code."""

    version: str
    default_language: str
    categories: dict[str, Category]
    thresholds: dict[str, float]
    languages: dict[str, Language] = field(default_factory=dict)


def _expand(pattern: str, macros: dict[str, str]) -> str:
    """``pattern`` with every ``<<NAME>>`` replaced by its macro (macros may use macros, up to 5 deep). Raises
    ``ValueError`` for a macro left unexpanded (deeper nesting, or a cycle): it would silently never match."""
    for _ in range(5):
        if not _MACRO.search(pattern):
            break
        pattern = _MACRO.sub(lambda m: macros[m.group(1)], pattern)
    if leftover := _MACRO.search(pattern):
        raise ValueError(f"macro {leftover.group(0)} is nested more than 5 deep (or refers to itself)")
    return pattern


def _load_language(path: Path, categories: dict[str, Category]) -> Language:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    macros = data.get("macros", {})
    flags = []
    for raw in data.get("red_flag", []):
        if raw["code"] not in categories:
            raise ValueError(f"{path.name}: unknown red-flag code {raw['code']!r} (add it to core.toml)")
        requires = raw.get("requires")
        with_ = raw.get("with")
        unless = raw.get("unless")
        flags.append(
            FlagRule(
                code=raw["code"],
                patterns=tuple(_expand(p, macros) for p in raw["patterns"]),
                requires=re.compile("|".join(_expand(p, macros) for p in requires)) if requires else None,
                mild=bool(raw.get("mild", False)),
                ignore_recent=bool(raw.get("ignore_recent", False)),
                with_=re.compile("|".join(f"(?:{_expand(p, macros)})" for p in with_)) if with_ else None,
                unless=re.compile("|".join(f"(?:{_expand(p, macros)})" for p in unless)) if unless else None,
            )
        )
    context = tuple(
        ContextRule(
            category=raw["category"],
            direction=raw["direction"],
            patterns=tuple(_expand(p, macros) for p in raw["patterns"]),
            max_scope=raw.get("max_scope"),
            terminated_by=tuple(raw.get("terminated_by", ())),
            excluded_types=tuple(raw.get("excluded_types", ())),
        )
        for raw in data.get("context", [])
    )
    numbers = {
        k: _expand(v, macros) if isinstance(v, str) else [_expand(x, macros) for x in v] if isinstance(v, list) else v
        for k, v in data.get("numbers", {}).items()
    }
    intents = tuple(
        (raw["name"], re.compile("|".join(_expand(p, macros) for p in raw["patterns"])))
        for raw in data.get("intent", [])
    )
    return Language(
        code=data["language"],
        markers=frozenset(data.get("markers", [])),
        number_words=dict(data.get("number_words", {})),
        flags=tuple(flags),
        context=context,
        numbers=numbers,
        intents=intents,
        replies=dict(data.get("replies", {})),
        not_urgent=re.compile("|".join(_expand(p, macros) for p in data.get("not_urgent", ["(?!x)x"]))),
    )


@lru_cache(maxsize=1)
def load() -> KnowledgeBase:
    """The knowledge base from ``KB_DIR`` (cached per process). Raises ValueError for an inconsistent file."""
    core = tomllib.loads((KB_DIR / "core.toml").read_text(encoding="utf-8"))
    categories = {
        code: Category(
            code=code,
            level=raw["level"],
            reply=raw.get("reply", ""),
            source=raw["source"],
            model_may_doubt=raw.get("model_may_doubt", True),
            general_sign=raw.get("general_sign", False),
            family=raw.get("family", code),
        )
        for code, raw in core["categories"].items()
    }
    kb = KnowledgeBase(
        version=core["version"],
        default_language=core.get("default_language", "en"),
        categories=categories,
        thresholds={k: float(v) for k, v in core.get("numbers", {}).items()},
    )
    for path in sorted(KB_DIR.glob("*.toml")):
        if path.name != "core.toml":
            language = _load_language(path, categories)
            kb.languages[language.code] = language
    return kb
