"""Text normalisation and language detection for triage (no network, deterministic)."""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "`": "'", "\u201c": '"', "\u201d": '"'}
)
_REPEATS = re.compile(r"([a-z])\1{2,}")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[a-z']+")
_SPANISH_CHARS = re.compile(r"[ñ¿¡áéíóú]")
# Spanish texting shorthand: "q" for "que", "xq" / "pq" for "porque" ("dice q me va a matar")
_SHORTHAND = ((re.compile(r"(?<![\w'&])q(?![\w'&])"), "que"), (re.compile(r"(?<![\w'])(?:xq|pq)(?![\w'])"), "porque"))


def normalise(text: str) -> str:
    """Lower case, typographic quotes made straight, accents removed (``desmayó`` → ``desmayo``), runs of 3+
    equal letters cut to 2 (``sooo`` → ``soo``), Spanish texting shorthand spelled out (``q`` → ``que``),
    whitespace collapsed. Emoji are kept (they carry context)."""
    text = unicodedata.normalize("NFKC", text or "").translate(_APOSTROPHES).lower()
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    for shorthand, word in _SHORTHAND:
        text = shorthand.sub(word, text)
    return _SPACES.sub(" ", _REPEATS.sub(r"\1\1", text)).strip()


def detect_language(raw: str, normalised: str, markers: dict[str, frozenset[str]], default: str) -> str:
    """The language whose marker words occur most often in ``normalised`` (Spanish letters and ¿¡ in ``raw``
    count for ``es``); ``default`` when nothing scores. Returns an ISO 639-1 code from ``markers``."""
    words = _WORD.findall(normalised)
    scores = {code: sum(1 for w in words if w in vocab) for code, vocab in markers.items()}
    if "es" in scores:
        scores["es"] += 2 * len(_SPANISH_CHARS.findall((raw or "").lower()))
    best = max(scores.items(), key=lambda item: (item[1], item[0] == default), default=(default, 0))
    return best[0] if best[1] > 0 else default
