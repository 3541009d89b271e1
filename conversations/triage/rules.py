"""The rules engine: red flags found by the knowledge base's patterns, judged in context by medspaCy's ConText.

One spaCy pipeline per language (``spacy.blank`` + sentencizer, no model download): targets are the knowledge
base's red-flag patterns (every match kept, overlaps included — medspaCy's TargetMatcher would keep only the
longest of two overlapping flags, and an urgent flag must never hide an emergency one), numeric red flags
(:mod:`conversations.triage.numbers`), the clinic's own phrases and the co-occurring signs of flags that
need one (``with``: "severe belly pain" pages with live vomiting, not with "no vomiting"); ConText (Chapman
et al., J Biomed Inform 2007; medspaCy's implementation) then marks each target negated, historical,
hypothetical, resolved, a joke, paperwork (ADMIN), "not urgent", recent or mild, with our own rules from the
knowledge base instead of the clinical-notes defaults (those were written for physicians' notes, not
patients' texts). A target in a suppressing context is no red flag now; one in a
softening context counts as urgent at most.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from conversations.triage import numbers
from conversations.triage.kb import KnowledgeBase, Language, load

if TYPE_CHECKING:
    from spacy.tokens import Span

GROUP = "medspacy_spans"
COMPANION = "_with"  # label of a flag's co-occurring sign (its ``with`` patterns), judged in context like a flag
SUPPRESS = {
    "NEGATED_EXISTENCE": "is_negated",
    "HISTORICAL": "is_historical",
    "HYPOTHETICAL": "is_hypothetical",
    "RESOLVED": "cs_resolved",
    "JOKE": "cs_joke",
    "ADMIN": "cs_admin",
}
SOFTEN = {"NOT_URGENT": "cs_not_urgent", "RECENT": "cs_recent", "MILD": "cs_mild"}
_ATTRS = {**SUPPRESS, **SOFTEN}
_lock = threading.Lock()


@dataclass(frozen=True)
class Finding:
    """One red-flag mention: ``code``, ``level`` after context, span in the normalised text, context labels."""

    code: str
    level: str
    start: int
    end: int
    text: str
    context: tuple[str, ...]


def _register_extensions() -> None:
    from spacy.tokens import Span

    for attr in ("cs_resolved", "cs_joke", "cs_admin", "cs_not_urgent", "cs_recent", "cs_mild"):
        if not Span.has_extension(attr):
            Span.set_extension(attr, default=False)


@lru_cache(maxsize=8)
def _pipeline(code: str):
    """Build the spaCy pipeline of language ``code`` (cached; ~0.3 s once per process)."""
    import spacy
    from medspacy.context import ConText, ConTextRule

    _register_extensions()
    language = load().languages[code]
    nlp = spacy.blank(code)
    nlp.add_pipe("sentencizer")
    context: ConText = nlp.add_pipe(
        "medspacy_context",
        config={
            "rules": None,
            "input_span_type": "group",
            "span_group_name": GROUP,
            "span_attrs": {category: {attr: True} for category, attr in _ATTRS.items()},
            "prune_on_target_overlap": True,
        },
    )
    # one ConText rule per knowledge-base entry (its patterns as one alternation): medspaCy's regex matcher
    # rebuilds the document's text for every rule, so fewer rules is most of the speed
    context_rules = [
        ConTextRule(
            f"{rule.category}#{index}",
            rule.category,
            pattern="|".join(f"(?:{p})" for p in rule.patterns),
            direction=rule.direction,
            max_scope=rule.max_scope,
            terminated_by=set(rule.terminated_by) or None,
            excluded_types=set(rule.excluded_types) or None,
        )
        for index, rule in enumerate(language.context)
    ]
    context.add(context_rules)
    return nlp


@lru_cache(maxsize=8)
def _flag_patterns(code: str) -> tuple[tuple[int, re.Pattern], ...]:
    language = load().languages[code]
    return tuple(
        (index, re.compile("|".join(f"(?:{p})" for p in flag.patterns))) for index, flag in enumerate(language.flags)
    )


def _matches(
    text: str, language: Language, kb: KnowledgeBase, phrases: tuple[str, ...]
) -> tuple[list[tuple[str, int, int, int]], list[tuple[str, int, int, int]]]:
    """Every red-flag mention: ``(code, flag index or -1, start, end)`` in ``text``; and the co-occurring signs
    of flags with ``with`` patterns, as ``(COMPANION, flag index, start, end)`` (a flag without one is dropped)."""
    found: list[tuple[str, int, int, int]] = []
    companions: list[tuple[str, int, int, int]] = []
    for index, pattern in _flag_patterns(language.code):
        flag = language.flags[index]
        if flag.requires is not None and not flag.requires.search(text):
            continue
        if flag.unless is not None and flag.unless.search(text):
            continue
        hits = [(flag.code, index, m.start(), m.end()) for m in pattern.finditer(text) if m.end() > m.start()]
        if hits and flag.with_ is not None:
            signs = [(COMPANION, index, m.start(), m.end()) for m in flag.with_.finditer(text) if m.end() > m.start()]
            if not signs:
                continue
            companions.extend(signs)
        found.extend(hits)
    found.extend((hit.code, -1, hit.start, hit.end) for hit in numbers.find(text, language, kb.thresholds))
    for phrase in phrases:
        found.extend(
            ("clinic_emergency_phrase", -1, m.start(), m.end())
            for m in re.finditer(rf"(?<!\w){re.escape(phrase)}(?!\w)", text)
        )
    return found, companions


def _judged(
    doc, nlp, found: list[tuple[str, int, int, int]], beside: Sequence[tuple[str, int, int, int]] = ()
) -> list[tuple[str, int, Span, tuple[str, ...]]]:
    """Run ConText over ``found`` (one pass) and return ``(code, flag index, span, context labels)`` per mention.
    ``beside`` are targets too (so a modifier inside them is pruned: the "ya no" of "ya no aguanta" denies
    nothing) but are not returned.

    The flag index and the labels are read from our own list, in the span group's order, right after this pass:
    spaCy keeps a span's ``._`` values in ``doc.user_data`` keyed by its character offsets only, so two mentions
    with the same offsets (two rules of one category matching the same words, the co-occurring sign of two
    flags, a sign at a flag's offsets in a later pass) would share — and overwrite — one index and one set of
    ConText labels. The span-level values are cleared after reading, so a later pass starts clean."""
    kept: list[tuple[str, int, Span]] = []
    for code, index, start, end in found:
        span = doc.char_span(start, end, label=code, alignment_mode="expand")
        if span is not None and len(span):
            kept.append((code, index, span))
    others = [doc.char_span(start, end, label=code, alignment_mode="expand") for code, _, start, end in beside]
    doc.spans[GROUP] = [span for _, _, span in kept] + [span for span in others if span is not None and len(span)]
    doc = nlp.get_pipe("medspacy_context")(doc)
    judged = [
        (code, index, span, tuple(c for c, attr in _ATTRS.items() if getattr(span._, attr, False)))
        for code, index, span in kept
    ]
    for key in [
        k for k in doc.user_data if isinstance(k, tuple) and len(k) == 4 and k[0] == "._." and k[3] is not None
    ]:
        del doc.user_data[key]  # span-level extension values of this pass (ConText labels, modifiers)
    return judged


def findings(text: str, language_code: str, *, phrases: tuple[str, ...] = ()) -> list[Finding]:
    """Red-flag findings of ``text`` (already normalised) in ``language_code``, each judged in context.

    ``phrases`` are the clinic's own emergency phrases, normalised. Raises KeyError for an unknown language.
    """
    kb = load()
    language = kb.languages[language_code]
    found, companions = _matches(text, language, kb, phrases)
    if not found:  # most messages: no red flag, no need to tokenise or run ConText
        return []
    # ConText passes, emergency flags then urgent ones (then the flags' co-occurring signs): ConText drops a
    # modifier that overlaps any target, so a long urgent match ("out of my seizure medication") must not hide
    # "medication" from "seizure", nor a sign ("no vomiting") hide the "no" that negates it. The signs' pass
    # has the flags beside them as targets: a modifier inside a red-flag phrase is part of it, not about a sign.
    passes = [
        [f for f in found if kb.categories[f[0]].level == "emergency"],
        [f for f in found if kb.categories[f[0]].level != "emergency"],
        companions,
    ]
    with _lock:  # spaCy pipelines are not documented as thread-safe; a call takes about a millisecond
        nlp = _pipeline(language_code)
        doc = nlp.make_doc(text)
        for name, component in nlp.pipeline:
            if name == "medspacy_context":
                break
            doc = component(doc)
        judged = []
        for number, group in enumerate(passes):
            if group:
                judged.extend(_judged(doc, nlp, group, found if number == 2 else []))
    # flags whose co-occurring sign is live (not negated, historical, hypothetical, resolved, a joke…)
    accompanied = {
        index for code, index, _, labels in judged if code == COMPANION and not any(c in SUPPRESS for c in labels)
    }
    results = []
    for code, index, span, labels in judged:
        category = kb.categories.get(code)
        if category is None:
            continue
        flag = language.flags[index] if index >= 0 else None
        if flag is not None and flag.with_ is not None and index not in accompanied:
            continue
        level = category.level
        if any(c in SUPPRESS for c in labels):
            level = "routine"
        elif level == "emergency" and any(
            c == "NOT_URGENT"
            or (c == "RECENT" and not (flag is not None and flag.ignore_recent))
            or (c == "MILD" and flag is not None and flag.mild)
            for c in labels
        ):
            level = "urgent"
        results.append(Finding(code, level, span.start_char, span.end_char, span.text, labels))
    return results
