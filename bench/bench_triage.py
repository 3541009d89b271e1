"""Benchmark: triage quality and speed of the local engine (rules + learned model, no LLM).

Sets: the training sets in ``conversations/triage/data`` (the rules were tuned on them and the model is trained
on them, so their figures are optimistic; ``blind_dev2``, ``blind_dev3``, ``blind_dev5`` and ``blind_dev6`` are
also printed leave-one-writer-out, the model retrained without them — how a new writer's wording meets the
engine) and ``tests/triage/data/blind_heldout.jsonl``, written by someone who never saw the rules, never trained
or tuned on: the lead's measurement.

Prints, per set: emergency recall overall, per red-flag category and per language; the routine false-alarm
rate (routine messages that would page); the confusion matrix; red-flag code and intent accuracy; the median
and p95 time per message (after one warm-up, which also trains the model). ``-v`` lists the misses.
Run: ``.venv/bin/python bench/bench_triage.py`` (or ``make bench``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings_test")


# independent writers' sets also scored with the model retrained without them
LEAVE_ONE_OUT = ("blind_dev2", "blind_dev3", "blind_dev5", "blind_dev6")


def main() -> None:
    from conversations.triage import model
    from conversations.triage.evaluation import evaluate, leaving_out, load_examples, render
    from conversations.triage.service import assess_rules

    assess_rules("warm up: chest pain / dolor de pecho")
    assess_rules("hola, me duele el pecho")

    def show(name: str, report) -> None:
        print(render(name, report))
        if "-v" in sys.argv:
            for expected, got, text in report.misses:
                print(f"  MISS expected {expected:<9} got {got:<9} {text[:140]}")

    for name in model.TRAINING_SETS:
        show(name, evaluate(model.load_sets((name,))))
    for name in LEAVE_ONE_OUT:  # a set not (yet) in model.TRAINING_SETS is scored as-is, the model never saw it
        with leaving_out(name):
            show(f"{name} (leave-one-writer-out)", evaluate(model.load_sets((name,))))
    show("blind_heldout", evaluate(load_examples(ROOT / "tests" / "triage" / "data" / "blind_heldout.jsonl")))


if __name__ == "__main__":
    main()
