"""The triage service (see the package docstring)."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field, replace

from conversations.triage import llm, model, rules
from conversations.triage.kb import Category, load
from conversations.triage.text import detect_language, normalise

logger = logging.getLogger(__name__)

RANK = {"routine": 0, "urgent": 1, "emergency": 2}
URGENCY = {"emergency": 5, "urgent": 4}
MAX_CHARS = 5000  # longer texts are triaged on their first 5,000 characters (an email's new text fits)
_REPLY_ORDER = ("crisis", "poison", "violence", "emergency")
_DOUBTABLE = Category(code="", level="emergency", reply="", source="")


@dataclass(frozen=True)
class Evidence:
    """A red-flag mention: ``code``, ``[start, end)`` in the normalised text, ``context`` labels (ConText)."""

    code: str
    start: int
    end: int
    context: tuple[str, ...] = ()


@dataclass(frozen=True)
class TriageResult:
    """One message's triage. ``urgency`` 1–5 (5 emergency, 4 urgent, 2 a prescription question, else 1).

    ``llm_level`` is the LLM's level when it answered (None otherwise); ``llm_error`` a short reason when it was
    asked and failed. ``rules_level`` is what the local engine said (rules and the learned model,
    :mod:`conversations.triage.model`); ``model_p`` the model's P(emergency), 0..1.
    """

    level: str
    urgency: int
    codes: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    language: str
    intent: str
    engine: str
    kb_version: str
    rules_level: str
    model_p: float | None = None
    llm_level: str | None = None
    llm_codes: tuple[str, ...] = ()
    llm_rationale: str = ""
    llm_error: str = ""
    elapsed_ms: float = 0.0
    reply_kinds: tuple[str, ...] = field(default=())

    @property
    def is_emergency(self) -> bool:
        return self.level == "emergency"

    @property
    def disagreement(self) -> bool:
        """True when the LLM answered with another level than the rules."""
        return self.llm_level is not None and self.llm_level != self.rules_level

    @property
    def reason(self) -> str:
        """A short non-PHI label for incidents and logs, e.g. ``"red flag: stroke"``."""
        if self.codes:
            return f"red flag: {', '.join(self.codes)}"[:120]
        return "llm" if self.engine == "rules+llm" and self.level != "routine" else ""


def _intent(text: str, language: str) -> str:
    for name, pattern in load().languages[language].intents:
        if pattern.search(text):
            return name
    return "other"


def _reply_kinds(codes: tuple[str, ...]) -> tuple[str, ...]:
    kb = load()
    kinds = {kb.categories[c].reply for c in codes if c in kb.categories and kb.categories[c].reply}
    return tuple(k for k in _REPLY_ORDER if k in kinds) or ("emergency",)


def assess_rules(text: str, *, phrases: list[str] | tuple[str, ...] = ()) -> TriageResult:
    """:func:`_assess_rules`, remembered for the last :data:`RECENT` distinct ``(text, phrases)`` of this process:
    a message is triaged by its channel, by the escalation screening and by the agent's turn (voice and chat run
    all three in one process), and the local engine is deterministic for a given knowledge base, which is loaded
    once per process. ``elapsed_ms`` is the first computation's. Whatever swaps the process's model (the
    leave-one-writer-out evaluation) calls :func:`forget_recent`."""
    return _assess_rules_recent((text or "")[:MAX_CHARS], tuple(phrases or ()))


RECENT = 256


def forget_recent() -> None:
    """Drop the remembered results (:func:`assess_rules`): the model or knowledge base they came from changed."""
    _assess_rules_recent.cache_clear()


@functools.lru_cache(maxsize=RECENT)
def _assess_rules_recent(text: str, phrases: tuple[str, ...]) -> TriageResult:
    return _assess_rules(text, phrases=phrases)


def _assess_rules(text: str, *, phrases: list[str] | tuple[str, ...] = ()) -> TriageResult:
    """Triage ``text`` by the local engine (no network; a few milliseconds): the red-flag rules, then the learned
    model (:mod:`conversations.triage.model`) — it raises an urgent message to an emergency at ``PAGE_AT`` and one the
    rules found nothing in at ``PAGE_ALONE_AT``, and turns a rule hit it
    scores under ``DOUBT_BELOW`` into urgent (a callback, not a page). ``phrases`` are the clinic's own emergency
    phrases (``Tenant.emergency_phrases``), added to — never replacing — the core rules; the model never
    doubts them. "Not urgent" in the patient's words makes an emergency urgent."""
    started = time.perf_counter()
    kb = load()
    raw = (text or "")[:MAX_CHARS].replace("\x00", "")
    norm = normalise(raw)
    markers = {code: lang.markers for code, lang in kb.languages.items()}
    language = detect_language(raw, norm, markers, kb.default_language)
    clinic = tuple(p for p in (normalise(p) for p in phrases or ()) if p)
    found = rules.findings(norm, language, phrases=clinic) if norm else []
    level = max((f.level for f in found), key=RANK.__getitem__, default="routine")
    not_urgent = bool(norm) and bool(kb.languages[language].not_urgent.search(norm))
    learned = model.score(norm) if norm else None
    # the clinic's own phrases and the categories the knowledge base keeps out of the model's doubt stand
    certain = any(
        f.level == "emergency"
        and (f.code == "clinic_emergency_phrase" or not kb.categories.get(f.code, _DOUBTABLE).model_may_doubt)
        for f in found
    )
    doubted = level == "emergency" and learned is not None and learned.p_emergency < model.DOUBT_BELOW
    if level == "emergency" and (not_urgent or (doubted and not certain)):
        # the patient says it is not urgent, or a rule hit reads like the model's hard negatives (history,
        # questions, idioms): a clinician calls back today (urgent), nobody is paged
        level = "urgent"
        found = [replace(f, level="urgent") if f.level == "emergency" else f for f in found]
    live = [f for f in found if f.level == level and level != "routine"]
    codes = tuple(dict.fromkeys(f.code for f in live))
    threshold = model.PAGE_AT if level == "urgent" else model.PAGE_ALONE_AT
    if level != "emergency" and not not_urgent and learned and learned.p_emergency >= threshold:
        level, codes = "emergency", (learned.code if learned.code in kb.categories else "learned_emergency",)
    if (
        level == "emergency"
        and codes
        and learned is not None
        and learned.code in kb.categories
        and learned.code_margin >= model.CODE_SURE_AT
        and learned.p_emergency >= 0.5  # the code classifier only knows emergencies
        and all(kb.categories.get(c, _DOUBTABLE).general_sign for c in codes)
    ):
        # the rules saw only a sign (not breathing, not waking, bleeding); the model names the cause
        # (overdose, diabetic, obstetric…) with confidence: its code leads the reply (988 / Poison Control)
        codes = (learned.code, *(c for c in codes if c != learned.code))
    if len(codes) > 1:  # the clinic's phrase matched what a core rule names better
        codes = tuple(c for c in codes if c != "clinic_emergency_phrase")
    intent = "emergency" if level == "emergency" else _intent(norm, language) if norm else "other"
    if intent != "emergency" and learned is not None and learned.intent_score >= model.INTENT_AT:
        intent = learned.intent  # the learned intent where it is sure (see model.INTENT_AT), else the patterns
    urgency = URGENCY.get(level, 2 if intent == "prescription" else 1)
    return TriageResult(
        level=level,
        urgency=urgency,
        codes=codes,
        evidence=tuple(Evidence(f.code, f.start, f.end, f.context) for f in found),
        language=language,
        intent=intent,
        engine="rules",
        kb_version=kb.version,
        rules_level=level,
        model_p=None if learned is None else round(learned.p_emergency, 3),
        elapsed_ms=(time.perf_counter() - started) * 1000,
        reply_kinds=_reply_kinds(codes) if level == "emergency" else (),
    )


def assess(
    text: str, *, phrases: list[str] | tuple[str, ...] = (), timeout: float | None = None, use_llm: bool | None = None
) -> TriageResult:
    """Rules, then — when an LLM is configured (``use_llm`` None = ``OPENAI_API_KEY`` set) — its second opinion
    within ``timeout`` seconds (default ``TRIAGE_LLM_TIMEOUT_SECONDS``). The higher level wins; an LLM error,
    timeout or lower answer never lowers the rules. Never raises for the LLM; call it outside a transaction."""
    from django.conf import settings

    result = assess_rules(text, phrases=phrases)
    if use_llm is False or (use_llm is None and not llm.configured()) or not (text or "").strip():
        return result
    budget = float(getattr(settings, "TRIAGE_LLM_TIMEOUT_SECONDS", 4.0))
    if timeout is not None:
        budget = min(budget, timeout)
    if budget < 0.1:
        return replace(result, llm_error="no time left")
    try:
        opinion = llm.ask(text[:MAX_CHARS], codes=sorted(load().categories), timeout=budget)
    except llm.SecondOpinionUnavailable as exc:
        logger.warning("triage second opinion unavailable (%s); the rules stand", exc)
        return replace(result, engine="rules+llm", llm_error=str(exc)[:120])
    level = max(result.level, opinion.level, key=RANK.__getitem__)
    codes = result.codes
    if level == "emergency" and result.level != "emergency":
        codes = opinion.red_flags or ("llm_emergency",)
    return replace(
        result,
        level=level,
        urgency=URGENCY.get(level, result.urgency),
        codes=tuple(codes),
        engine="rules+llm",
        llm_level=opinion.level,
        llm_codes=opinion.red_flags,
        llm_rationale=opinion.rationale,
        reply_kinds=_reply_kinds(tuple(codes)) if level == "emergency" else (),
    )


def safety_reply(result: TriageResult, *, clinic: str, after_hours: bool | None = None) -> str:
    """The safety message for an emergency in the patient's language: 988 for suicide or self-harm, Poison
    Control for poisoning, 911 otherwise (several when several apply), then who we are alerting. No patient
    data. ``after_hours`` True/False names who is alerted (on-call clinician / clinic team); None says "the care
    team". Returns "" for a non-emergency."""
    if not result.is_emergency:
        return ""
    kb = load()
    replies = kb.languages.get(result.language, kb.languages[kb.default_language]).replies
    lines = [replies[kind] for kind in result.reply_kinds or ("emergency",)]
    key = "alerted" if after_hours is None else "alerted_after_hours" if after_hours else "alerted_in_hours"
    lines.append(replies[key].format(clinic=clinic))
    return " ".join(lines)
