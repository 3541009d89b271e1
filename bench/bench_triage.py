"""Benchmark: triage quality and speed on the labelled sets in ``tests/triage/data``: ``tune`` and ``dev`` (rules were
tuned on them) and ``heldout`` (written independently, never used for tuning); ``blind_dev`` and ``blind_heldout``
were written by someone who never saw the rules: ``blind_dev`` was studied to find missing categories (rules are
written per category, never per sentence), ``blind_heldout`` is the lead's measurement and is never used to tune.

Prints, per set: emergency recall overall, per red-flag category and per language; the routine false-alarm
rate (routine messages that would page); the confusion matrix; red-flag code and intent accuracy; the median
and p95 time per message of the local rules engine (after one warm-up). ``-v`` lists the misses.
Run: ``.venv/bin/python bench/bench_triage.py`` (or ``make bench``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings_test")


def main() -> None:
    from conversations.triage.evaluation import evaluate, load_examples, render
    from conversations.triage.service import assess_rules

    assess_rules("warm up: chest pain / dolor de pecho")
    assess_rules("hola, me duele el pecho")
    for name in ("tune", "dev", "heldout", "final", "final2", "final3", "blind_dev", "blind_heldout"):
        report = evaluate(load_examples(ROOT / "tests" / "triage" / "data" / f"{name}.jsonl"))
        print(render(name, report))
        if "-v" in sys.argv:
            for expected, got, text in report.misses:
                print(f"  MISS expected {expected:<9} got {got:<9} {text[:140]}")


if __name__ == "__main__":
    main()
