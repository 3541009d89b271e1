"""Recall and false alarms on the labelled sets in ``tests/triage/data`` (written as patients write, with hard
negatives and Spanish). A floor per set guards against a rule change that loses a category; bench_triage.py
prints the full report (and the time per message, which tests never assert)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conversations.triage.evaluation import evaluate, load_examples

DATA = Path(__file__).with_name("data")


@pytest.mark.parametrize("name", ["tune", "dev", "heldout", "final", "final2", "final3"])
def test_emergency_recall_and_false_alarms(name):
    report = evaluate(load_examples(DATA / f"{name}.jsonl"))
    assert report.emergency_recall >= 0.97, report.misses
    assert report.false_alarm_rate <= 0.03
    for category, (hit, total) in report.recall.items():
        assert hit / total >= 0.8, (category, hit, total)
    for language, (hit, total) in report.recall_by_language.items():
        assert hit / total >= 0.95, (language, hit, total)
