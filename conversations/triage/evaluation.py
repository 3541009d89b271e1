"""Evaluate the local triage engine on a labelled set (JSON lines: ``text``, ``level``, ``category``, ``lang``,
``intent``). Used by ``bench/bench_triage.py`` (prints) and the triage tests (recall floors, not timings).

The learned model (:mod:`conversations.triage.model`) has seen every set in ``data/``: to score one of them
honestly, evaluate it inside :func:`leaving_out` (the model retrained without it — a new writer's wording)."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from conversations.triage import model
from conversations.triage.kb import load
from conversations.triage.service import _assess_rules, forget_recent

LEVELS = ("emergency", "urgent", "routine")
# The data set's intent names → ours (tests/triage/data was written before the engine).
INTENT_NAMES = model.INTENT_NAMES


@dataclass
class Report:
    """Counts of one evaluation. ``recall[category]`` = (paged, total) over emergency examples."""

    total: int = 0
    confusion: dict[tuple[str, str], int] = field(default_factory=Counter)
    recall: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    recall_by_language: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    code_hits: list[int] = field(default_factory=lambda: [0, 0])
    family_hits: list[int] = field(default_factory=lambda: [0, 0])
    intent_hits: list[int] = field(default_factory=lambda: [0, 0])
    language_hits: list[int] = field(default_factory=lambda: [0, 0])
    times_ms: list[float] = field(default_factory=list)
    misses: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def emergency_recall(self) -> float:
        paged = sum(v[0] for v in self.recall.values())
        total = sum(v[1] for v in self.recall.values())
        return paged / total if total else 1.0

    @property
    def false_alarm_rate(self) -> float:
        """Routine messages that would page (triaged emergency), over all routine messages."""
        routine = sum(self.confusion[("routine", p)] for p in LEVELS)
        return self.confusion[("routine", "emergency")] / routine if routine else 0.0


def _family(code: str) -> str:
    """The knowledge-base family of a red-flag code or a data set's label (``diabetic_emergency`` → the
    family of ``hyperglycaemia_dka``); an unknown code is its own family."""
    code = model.CODE_NAMES.get(code, code)
    category = load().categories.get(code)
    return category.family if category is not None else code


def load_examples(path: Path) -> list[dict]:
    """The examples of a JSON-lines file."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@contextmanager
def leaving_out(*names: str) -> Iterator[None]:
    """Within the block, the process's model is trained on every training set but ``names`` (about a second)."""
    previous = model._model
    model._model = model.Model(model.load_sets(tuple(n for n in model.TRAINING_SETS if n not in names)))
    forget_recent()
    try:
        yield
    finally:
        model._model = previous
        forget_recent()


def evaluate(examples: list[dict]) -> Report:
    """Run the local engine over ``examples`` (never a remembered result: the times are measured) and count."""
    report = Report()
    for example in examples:
        result = _assess_rules(example["text"])
        report.total += 1
        report.times_ms.append(result.elapsed_ms)
        expected, got = example["level"], result.level
        report.confusion[(expected, got)] += 1
        report.language_hits[0] += result.language == example.get("lang", result.language)
        report.language_hits[1] += 1
        if expected == "emergency":
            category = example.get("category") or "?"
            for bucket in (report.recall[category], report.recall_by_language[example.get("lang", "?")]):
                bucket[0] += got == "emergency"
                bucket[1] += 1
            if got == "emergency":
                report.code_hits[0] += category in result.codes
                report.code_hits[1] += 1
                report.family_hits[0] += _family(category) in {_family(c) for c in result.codes}
                report.family_hits[1] += 1
        if expected != got:
            report.misses.append((expected, got, example["text"]))
        if expected == "routine" and example.get("intent"):
            wanted = INTENT_NAMES.get(example["intent"], example["intent"])
            report.intent_hits[0] += result.intent == wanted
            report.intent_hits[1] += 1
    return report


def render(name: str, report: Report) -> str:
    """A plain-text summary of ``report``."""
    lines = [f"== {name}: {report.total} messages"]
    lines.append(
        f"emergency recall {report.emergency_recall:.3f}; false alarms (routine paged) {report.false_alarm_rate:.3f}"
    )
    for category, (hit, total) in sorted(report.recall.items()):
        lines.append(f"  recall {category:<22} {hit:>3}/{total:<3} {hit / total:.3f}")
    for language, (hit, total) in sorted(report.recall_by_language.items()):
        lines.append(f"  recall language {language:<13} {hit:>3}/{total:<3} {hit / total:.3f}")
    lines.append("confusion (rows expected, columns triaged): " + " ".join(f"{lv:>9}" for lv in LEVELS))
    for expected in LEVELS:
        lines.append(f"  {expected:<9} " + " ".join(f"{report.confusion[(expected, got)]:>9}" for got in LEVELS))
    hit, total = report.code_hits
    lines.append(f"red-flag code right when paged: {hit}/{total}")
    hit, total = report.family_hits
    lines.append(f"red-flag family right when paged (diabetic, obstetric, fever/sepsis as one): {hit}/{total}")
    hit, total = report.intent_hits
    lines.append(f"intent accuracy (routine): {hit}/{total} {hit / max(total, 1):.3f}")
    hit, total = report.language_hits
    lines.append(f"language detected: {hit}/{total}")
    times = sorted(report.times_ms)
    if times:
        lines.append(
            f"time per message: median {statistics.median(times):.2f} ms, p95 {times[int(len(times) * 0.95) - 1]:.2f} ms"
        )
    return "\n".join(lines)
