"""Recall and false alarms on the labelled sets (written as patients write, with hard negatives and Spanish).

The training sets live in ``conversations/triage/data`` (the learned model is trained on them, the rules were
tuned on them); ``tests/triage/data/blind_heldout.jsonl`` is never trained or tuned on (bench_triage.py prints
it). A floor per set guards against a rule or data change that loses a category; the leave-one-writer-out
tests retrain the model without a writer's set and score that set, which is how a new patient's wording meets
the engine. bench_triage.py prints the full reports (and the time per message, which tests never assert)."""

from __future__ import annotations

import pytest

from conversations.triage import model, rules
from conversations.triage.evaluation import evaluate, leaving_out
from conversations.triage.service import assess_rules
from conversations.triage.text import normalise


@pytest.mark.parametrize("name", ["tune", "dev", "heldout", "final", "final2", "final3", "blind_dev"])
def test_emergency_recall_and_false_alarms(name):
    report = evaluate(model.load_sets((name,)))
    assert report.emergency_recall >= 0.97, report.misses
    assert report.false_alarm_rate <= 0.03, report.misses
    for category, (hit, total) in report.recall.items():
        assert hit / total >= 0.9, (category, hit, total)
    for language, (hit, total) in report.recall_by_language.items():
        assert hit / total >= 0.95, (language, hit, total)


@pytest.mark.parametrize("name", ["blind_dev2", "blind_dev3", "blind_dev5", "blind_dev6"])
def test_a_writer_the_model_never_saw(name):
    """Trained without ``name`` (another writer's wording): measured 0.99 recall, 2–3 % false alarms (the rules
    alone scored 0.83 / 5–6 % on these sets before any tuning on them)."""
    with leaving_out(name):
        report = evaluate(model.load_sets((name,)))
    assert report.emergency_recall >= 0.97, report.misses
    assert report.false_alarm_rate <= 0.04, report.misses
    for category, (hit, total) in report.recall.items():
        assert hit / total >= 0.8, (category, hit, total)


@pytest.mark.parametrize(
    "text, code",
    [
        ("baby makes a squeaky high noise every breath in even resting, looks scared", "breathing_difficulty"),
        (
            "my daughter is allergic to peanuts, ate a cookie, now scratching all over and her breathing sounds squeaky",
            "anaphylaxis",
        ),
        ("mi bebe respira rapidisimo y se le hunden las costillas", "breathing_difficulty"),
        ("a mi abuela se le torcio la boca y no se le entiende lo que dice", "stroke"),
    ],
)
def test_the_model_pages_what_no_rule_names(text, code):
    result = assess_rules(text)
    assert not [f for f in rules.findings(normalise(text), result.language) if f.level == "emergency"]
    assert result.level == "emergency" and result.codes == (code,)


def test_the_model_doubting_a_rule_hit_makes_it_a_callback_not_silence():
    """A rule hit in words the model has only seen in routine messages (a question for a class) is urgent: a
    clinician calls back; nobody is paged, and it is not dropped."""
    text = "for my nursing class: what does anaphylaxis look like and when do you use the epipen?"
    result = assess_rules(text)
    assert result.model_p is not None and result.level in ("urgent", "routine")
    assert result.level != "emergency"


def test_the_model_never_doubts_a_crisis_or_the_clinics_own_phrases():
    text = "pls cancel all my appts, i won’t be around by then anyway, already wrote the letters to my kids"
    assert rules.findings(normalise(text), "en")  # the rules name it …
    result = assess_rules(text)
    assert result.level == "emergency" and "suicide_self_harm" in result.codes  # … and the model cannot unsay it
    assert assess_rules("can I book a cleaning, also code purple", phrases=["code purple"]).level == "emergency"


@pytest.mark.parametrize("text", ["do you do flu shots for kids?", "is the flu vaccine in yet? want one for my mom"])
def test_asking_for_a_flu_shot_is_not_a_symptom(text):
    assert assess_rules(text).level == "routine"


def test_having_the_flu_still_gets_a_callback():
    assert assess_rules("i think i have the flu, body aches and chills since tuesday").level == "urgent"


@pytest.mark.parametrize(
    "text, code",
    [
        (
            "my roommate snorted something at a party and now hes barely breathing, cant wake him up",
            "overdose_poisoning",
        ),
        ("mi primo se metio algo en la fiesta y no despierta bien, respira bien poquito", "overdose_poisoning"),
    ],
)
def test_the_model_names_the_cause_when_the_rules_only_see_a_sign(text, code):
    """Not breathing / not waking are signs: a confident model names the cause, so the reply leads with Poison
    Control; the rules' sign codes stay after it."""
    result = assess_rules(text)
    assert result.level == "emergency" and result.codes[0] == code, result
    assert "poison" in result.reply_kinds


def test_code_families_group_the_data_sets_labels():
    from conversations.triage.evaluation import _family

    assert _family("diabetic_emergency") == _family("hypoglycaemia") == _family("hyperglycaemia_dka")
    assert _family("obstetric_emergency") == _family("obstetric_bleeding") != _family("postop_bleeding")
    assert _family("stroke") == "stroke"


@pytest.mark.parametrize(
    "text, intent",
    [
        ("hey can u tell me if dr lopez takes new patients", "general_question"),
        ("whats the copay for a sick visit with blue shield", "billing"),
        ("necesito que me manden la receta de la presion a otra farmacia", "prescription"),
        ("cuanto cuesta la consulta sin seguro", "billing"),
        ("where do i park for the lab", "general_question"),
    ],
)
def test_routine_intents_as_patients_ask(text, intent):
    result = assess_rules(text)
    assert result.level == "routine" and result.intent == intent


def test_the_hand_applied_scores_are_scikit_learns():
    """:meth:`model.Model.score` multiplies the coefficients itself (speed); it must agree with scikit-learn."""
    fitted = model.model()
    for text in ("my chest is so tight and my arm is numb", "quiero cambiar mi cita al jueves", "do u take aetna"):
        features = fitted.vectoriser.transform([normalise(text)])
        score = fitted.score(normalise(text))
        assert score.p_emergency == pytest.approx(fitted.level.predict_proba(features)[0][1])
        assert score.code == fitted.code.predict(features)[0]
        assert score.intent == fitted.intent.predict(features)[0]
        assert score.intent_score == pytest.approx(max(fitted.intent.decision_function(features)[0]))
