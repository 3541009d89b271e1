"""Red flags that are numbers with units: an infant's temperature, a blood sugar, a pill count.

Thresholds come from ``core.toml`` ``[numbers]`` (AAP: under 3 months at 100.4 °F / 38.0 °C; ADA
hypoglycaemia levels; Poison Control pill counts); the words around the numbers from ``<lang>.toml``.
Temperatures: a value with °C/C or 34–43 without a unit is Celsius, 95–110 Fahrenheit; others are not
temperatures. Glucose: mmol/L when marked or below 20, else mg/dL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from conversations.triage.kb import Language

_TEMP = re.compile(
    r"(?<![\d.])(?P<v>\d{2,3}(?:[.,]\d{1,2})?)\s*(?P<deg>°|º|degrees?|deg|grados)?\s*"
    r"(?P<unit>fahrenheit|celsius|centigrados?|f|c)?\b(?!\s*(?:weeks?|wks?|semanas|days?|dias|months?|meses|years?|anos|mg|lbs?|pounds|kg|pills|%))"
)
_GLUCOSE_VALUE = re.compile(r"(?P<v>\d{1,3}(?:[.,]\d)?)\s*(?P<unit>mmol(?:/l)?|mg(?:/dl)?)?")


@dataclass(frozen=True)
class NumberHit:
    """One numeric red flag: ``code`` and the character span ``[start, end)`` in the normalised text."""

    code: str
    start: int
    end: int


def _to_float(value: str) -> float:
    return float(value.replace(",", "."))


def _count(token: str, language: Language) -> float | None:
    if token.replace(".", "", 1).replace(",", "", 1).isdigit():
        return _to_float(token)
    return language.number_words.get(token)


_COMPILED: dict[str, dict[str, re.Pattern]] = {}


def _compiled(language: Language) -> dict[str, re.Pattern]:
    if language.code in _COMPILED:
        return _COMPILED[language.code]
    n = language.numbers
    words = "|".join(sorted(language.number_words, key=len, reverse=True))
    _COMPILED[language.code] = {
        "infant": re.compile(str(n["infant"])),
        **{f"age{i}": re.compile(str(a)) for i, a in enumerate(n["age"] if isinstance(n["age"], list) else [n["age"]])},
        "fever": re.compile(str(n["fever_words"])),
        "glucose": re.compile(rf"(?:{n['glucose_words']})\W+(?:\w+\W+){{0,5}}?(?=\d)"),
        "pills": re.compile(
            rf"(?:{n['pill_verbs']})\W+(?:\w+\W+){{0,3}}?(?P<n>\d{{1,3}}|{words})\W+(?:\w+\W+){{0,3}}?(?:{n['pill_nouns']})"
        ),
    }
    return _COMPILED[language.code]


def _fahrenheit(match: re.Match) -> float | None:
    value, unit = _to_float(match.group("v")), (match.group("unit") or "")
    if unit.startswith("c") or (not unit and 34 <= value <= 43):
        return value * 9 / 5 + 32 if 34 <= value <= 43 else None
    if unit.startswith("f") or (not unit and 95 <= value <= 110):
        return value if 95 <= value <= 110 else None
    return None


_DIGIT_WORDS = {
    "zero": 0,
    "oh": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "uno": 1,
    "dos": 2,
    "tres": 3,
    "cuatro": 4,
    "cinco": 5,
    "seis": 6,
    "siete": 7,
    "ocho": 8,
    "nueve": 9,
}
_SPOKEN_F = re.compile(
    r"\b(?:a |one )?hundred(?P<point> point| and| and a|)? (?P<d>zero|oh|one|two|three|four|five|six|seven|eight|nine)\b"
)
_SPOKEN_C = re.compile(
    r"\b(?P<tens>treinta|cuarenta|thirty|forty)(?: y |[ -])"
    r"(?P<d>uno|dos|tres|cuatro|cinco|seis|siete|ocho|nueve|one|two|three|four|five|six|seven|eight|nine)\b"
    r"(?: (?:point|punto|coma) (?P<dec>\w+))?|\bcuarenta\b"
)


def _spoken_temperatures(text: str) -> list[tuple[int, int, float]]:
    """Temperatures said in words (voice transcripts): "a hundred point five" (°F), "treinta y ocho" (°C)."""
    found = []
    for m in _SPOKEN_F.finditer(text):
        digit = _DIGIT_WORDS[m.group("d")]
        found.append((m.start(), m.end(), 100 + (digit / 10 if m.group("point") == " point" else digit)))
    for m in _SPOKEN_C.finditer(text):
        if not m.group("tens"):
            celsius = 40.0
        else:
            celsius = (30 if m.group("tens") in ("treinta", "thirty") else 40) + _DIGIT_WORDS[m.group("d")]
            celsius += _DIGIT_WORDS.get(m.group("dec") or "", 0) / 10
        if 34 <= celsius <= 43:
            found.append((m.start(), m.end(), celsius * 9 / 5 + 32))
    return found


def find(text: str, language: Language, thresholds: dict[str, float]) -> list[NumberHit]:
    """Numeric red flags in ``text`` (normalised) for ``language``."""
    patterns = _compiled(language)
    hits: list[NumberHit] = []
    ages = [(0.0, m) for m in patterns["infant"].finditer(text)]
    for m in (m for key, p in patterns.items() if key.startswith("age") for m in p.finditer(text)):
        count = _count(m.group("n"), language)
        unit = m.group("unit")
        per = language.numbers["age_units"].get(unit) if isinstance(language.numbers["age_units"], dict) else None
        if count is not None and per:
            ages.append((count * per, m))
    infant = [m for days, m in ages if days <= thresholds["infant_age_days"]]
    if infant:
        temps = sorted(
            [(m.start(), m.end(), f) for m in _TEMP.finditer(text) if (f := _fahrenheit(m)) is not None]
            + _spoken_temperatures(text)
        )
        # the last reading is the baby's now ("had 99 this morning, now 101"; "ER at 100.4 — mine is 98.9")
        if temps and temps[-1][2] >= thresholds["infant_fever_f"]:
            hits.append(NumberHit("infant_fever", temps[-1][0], temps[-1][1]))
        elif not temps and (word := patterns["fever"].search(text)) and not word.group().startswith("temp"):
            hits.append(NumberHit("infant_fever", infant[0].start(), infant[0].end()))
    for m in patterns["glucose"].finditer(text):
        value_match = _GLUCOSE_VALUE.match(text, m.end())
        if not value_match:
            continue
        value, unit = _to_float(value_match.group("v")), value_match.group("unit") or ""
        mmol = unit.startswith("mmol") or value < 20
        low = value <= thresholds["hypoglycaemia_mmol_l"] if mmol else value <= thresholds["hypoglycaemia_mg_dl"]
        if low and value > 0:
            hits.append(NumberHit("hypoglycaemia", m.start(), value_match.end()))
    for m in patterns["pills"].finditer(text):
        count = _count(m.group("n"), language)
        if count is not None and count >= thresholds["overdose_pill_count"]:
            hits.append(NumberHit("overdose_poisoning", m.start(), m.end()))
    return hits
