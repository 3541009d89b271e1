"""The learned half of the local triage engine: a linear text classifier trained, in-process, on the labelled
messages in ``data/`` (JSON lines: ``text``, ``level``, ``category``, ``lang``; written as patients write by
several independent writers, English and Spanish, with hard negatives). No network, no pickled binaries: the
model is rebuilt from the reviewed data the first time a process triages (about a second) and is deterministic.

Why beside the rules: rules tuned on one writer's messages reached 0.99 recall on that writer and 0.73–0.83 on
the next (new wordings of the same red flag). The local engine pages when the rules say emergency, or the model
scores :data:`PAGE_AT` on a message the rules call urgent, or :data:`PAGE_ALONE_AT` on one they found nothing
in; a rule hit it scores under :data:`DOUBT_BELOW` becomes urgent (never for the categories the knowledge base
marks ``model_may_doubt = false``, nor the clinic's own phrases). Leave-one-writer-out (trained without the set
it is scored on) that scored 0.978 recall / 1 % false alarms and 0.978 / 2 % on the two newest independent sets
(rules alone, before tuning on them: 0.833 / 6 % and 0.833 / 5 %). See ``bench/bench_triage.py``.

Features: TF-IDF of character n-grams (2–5, inside word boundaries: robust to typos, texting spellings and
Spanish inflection) plus word uni/bigrams, on :func:`conversations.triage.text.normalise`'d text. A
scikit-learn logistic regression for emergency vs not (class-balanced) and a linear SVM for which red-flag code,
trained on the emergencies only (so the safety reply names 988 / Poison Control when the rules found nothing);
a linear SVM for the intent, trained on the non-emergencies the writers labelled (its answer replaces the
knowledge base's intent patterns from :data:`INTENT_AT`; leave-one-writer-out on the three blind sets 0.79, the
patterns 0.72 — and those were tuned on these very sets; blind_heldout 0.667 → 0.787).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).with_name("data")
TRAINING_SETS = (
    "tune",
    "dev",
    "heldout",
    "final",
    "final2",
    "final3",
    "blind_dev",
    "blind_dev2",
    "blind_dev3",
    "blind_dev5",
    "blind_dev6",
    "hard_negatives",
)
C_LEVEL = 10.0  # inverse regularisation of the level classifier
PAGE_AT = 0.6  # P(emergency) at or above which the model raises a rules-urgent message to an emergency
PAGE_ALONE_AT = 0.8  # … and raises a message the rules found nothing in
CODE_SURE_AT = 0.3  # code margin at or above which the model's category replaces rule codes that are only signs
DOUBT_BELOW = 0.2  # a rules emergency the model scores under this becomes urgent (a clinician calls back)
INTENT_AT = -0.2  # the model's intent replaces the patterns' from this SVM decision value of its best intent
# Labels the data sets use for what the knowledge base names otherwise.
CODE_NAMES = {"diabetic_emergency": "hyperglycaemia_dka"}
# The data sets' intent names → ours (the first sets were written before the engine).
INTENT_NAMES = {
    "booking": "book_appointment",
    "reschedule": "reschedule_appointment",
    "cancel": "cancel_appointment",
}

_lock = threading.Lock()
_model: Model | None = None


@dataclass(frozen=True)
class Score:
    """``p_emergency`` 0..1, the most likely red-flag ``code`` (a knowledge-base category) if it is one, and
    ``code_margin``: the code classifier's decision value for it minus the runner-up's (0 when there is one
    code; the larger, the surer); the most likely ``intent`` (``book_appointment`` … ``general_question`` or
    ``other``) and ``intent_score``, its SVM decision value (unbounded; above 0 it is on the intent's side of
    every one-vs-rest boundary)."""

    p_emergency: float
    code: str
    code_margin: float = 0.0
    intent: str = "other"
    intent_score: float = -1.0


class Model:
    """The fitted vectoriser and the three classifiers (see the module docstring)."""

    def __init__(self, examples: list[dict]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_union
        from sklearn.svm import LinearSVC

        from conversations.triage.text import normalise

        texts = [normalise(e["text"]) for e in examples]
        self.vectoriser = make_union(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
        )
        features = self.vectoriser.fit_transform(texts)
        emergency = [e["level"] == "emergency" for e in examples]
        self.level = LogisticRegression(C=C_LEVEL, max_iter=2000, class_weight="balanced").fit(features, emergency)
        rows = [i for i, flag in enumerate(emergency) if flag]
        codes = [CODE_NAMES.get(examples[i]["category"], examples[i]["category"]) for i in rows]
        self.code = LinearSVC(C=1.0).fit(features[rows], codes)
        rows = [i for i, e in enumerate(examples) if e.get("intent") and e["level"] != "emergency"]
        intents = [INTENT_NAMES.get(examples[i]["intent"], examples[i]["intent"]) for i in rows]
        self.intent = LinearSVC(C=0.5).fit(features[rows], intents)  # a logistic regression fit 40× slower

    def score(self, normalised: str) -> Score:
        """Score one normalised message (see :func:`conversations.triage.text.normalise`).

        The linear models are applied by hand, one sparse product each: scikit-learn's ``predict_proba`` and
        ``decision_function`` validate their input on every call, which cost more than the arithmetic."""
        import numpy as np

        features = self.vectoriser.transform([normalised])
        logit = float((features @ self.level.coef_.T)[0, 0] + self.level.intercept_[0])
        p = 1.0 / (1.0 + float(np.exp(-logit)))  # P(classes_[1]); the classes are (False, True)
        if not self.level.classes_[1]:
            p = 1.0 - p
        decision = np.asarray(features @ self.code.coef_.T)[0] + self.code.intercept_
        order = decision.argsort()[::-1]
        margin = float(decision[order[0]] - decision[order[1]]) if len(order) > 1 else 0.0
        intents = np.asarray(features @ self.intent.coef_.T)[0] + self.intent.intercept_
        best = int(intents.argmax())
        return Score(
            p_emergency=p,
            code=str(self.code.classes_[order[0]]),
            code_margin=margin,
            intent=str(self.intent.classes_[best]),
            intent_score=float(intents[best]),
        )


def load_sets(names: tuple[str, ...] = TRAINING_SETS) -> list[dict]:
    """The examples of the named sets in ``data/`` (raises ``FileNotFoundError`` for a missing one)."""
    examples: list[dict] = []
    for name in names:
        with (DATA_DIR / f"{name}.jsonl").open(encoding="utf-8") as handle:
            examples.extend(json.loads(line) for line in handle if line.strip())
    return examples


def model() -> Model:
    """The process's model, trained on :data:`TRAINING_SETS` on first use (thread-safe, once per process)."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                _model = Model(load_sets())
    return _model


def score(normalised: str) -> Score:
    """:meth:`Model.score` with the process's model."""
    return model().score(normalised)
