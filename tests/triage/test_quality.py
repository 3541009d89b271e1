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


def test_blind_development_set_floors():
    """``blind_dev`` was written by someone who never saw the rules (and studied to find missing categories):
    floors a little under the measured 0.993 recall (every category 10/10 but one 9/10, Spanish 50/50) and no
    routine message paging."""
    report = evaluate(load_examples(DATA / "blind_dev.jsonl"))
    assert report.emergency_recall >= 0.97, report.misses
    assert report.false_alarm_rate <= 0.01, report.misses
    for category, (hit, total) in report.recall.items():
        assert hit / total >= 0.9, (category, hit, total)
    for language, (hit, total) in report.recall_by_language.items():
        assert hit / total >= 0.97, (language, hit, total)
