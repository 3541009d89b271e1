"""Translation catalogs without GNU gettext: extract the patient-facing strings and compile ``.po`` → ``.mo``.

    python scripts/compile_messages.py           # compile locale/*/LC_MESSAGES/django.po to django.mo (polib)
    python scripts/compile_messages.py --check   # exit 1 if a .mo is stale or a string lacks a translation

Patient-facing text (agent replies, confirmations, reminders, surveys) is marked with ``gettext`` /
``gettext_noop`` in :data:`SOURCES`; :func:`extract` finds those literal msgids with Python's ``ast`` (no
xgettext), and in the patient-facing :data:`TEMPLATES` ``{% translate "…" %}`` and one-line
``{% blocktranslate [with …] %}…{{ name }}…{% endblocktranslate %}`` (msgid with ``%(name)s``, as Django builds it). The compiled ``.mo`` files are committed, so neither tests, CI nor deployments need gettext.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "locale"
SOURCES = [
    "conversations/agent/dates.py",
    "conversations/agent/engine.py",
    "conversations/agent/intake.py",
    "conversations/agent/session.py",
    "conversations/agent/tools.py",
    "conversations/agent/backends/local.py",
    "channels_app/confirmations.py",
    "channels_app/reminders.py",
    "channels_app/surveys.py",
]
TEMPLATES = ["channels_app/templates/surveys/survey.html"]
_MARKERS = {"_", "gettext", "gettext_noop", "gettext_lazy"}
_TRANSLATE = re.compile(r"""{%\s*(?:translate|trans)\s+(?:"([^"]*)"|'([^']*)')""")
_BLOCK = re.compile(r"{%\s*blocktranslate\b[^%]*%}(.*?){%\s*endblocktranslate\s*%}", re.S)
_VAR = re.compile(r"{{\s*(\w+)\s*}}")


def extract_templates(paths: list[str] | None = None) -> list[str]:
    """The msgids of ``{% translate %}`` / ``{% blocktranslate %}`` in ``paths`` (default :data:`TEMPLATES`)."""
    found: dict[str, None] = {}
    for rel in paths or TEMPLATES:
        text = (ROOT / rel).read_text()
        hits = [(m.start(), m.group(1) if m.group(1) is not None else m.group(2)) for m in _TRANSLATE.finditer(text)]
        hits += [(m.start(), _VAR.sub(r"%(\1)s", m.group(1))) for m in _BLOCK.finditer(text)]
        for _pos, msgid in sorted(hits):
            found.setdefault(msgid, None)
    return list(found)


def extract(paths: list[str] | None = None) -> list[str]:
    """The msgids marked in ``paths`` (default :data:`SOURCES`), in order of first appearance."""
    found: dict[str, None] = {}
    for rel in paths or SOURCES:
        tree = ast.parse((ROOT / rel).read_text(), filename=rel)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in _MARKERS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.setdefault(node.args[0].value, None)
    return list(found)


def catalogs() -> list[Path]:
    """Every ``locale/<code>/LC_MESSAGES/django.po``."""
    return sorted(LOCALE.glob("*/LC_MESSAGES/django.po"))


def compiled(po_path: Path) -> bytes:
    """The ``.mo`` bytes of ``po_path`` (polib's writer; fuzzy entries left out, like msgfmt)."""
    po = polib.pofile(str(po_path))
    tmp = po_path.with_suffix(".mo.tmp")
    try:
        po.save_as_mofile(str(tmp))
        return tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)


def problems() -> list[str]:
    """What ``--check`` reports: stale ``.mo`` files and marked strings without a translation."""
    out = []
    wanted = extract() + extract_templates()
    for po_path in catalogs():
        po = polib.pofile(str(po_path))
        translated = {e.msgid for e in po if e.msgstr and not e.obsolete and "fuzzy" not in e.flags}
        out += [f"{po_path}: no translation for {msgid!r}" for msgid in wanted if msgid not in translated]
        mo_path = po_path.with_suffix(".mo")
        if not mo_path.exists() or mo_path.read_bytes() != compiled(po_path):
            out.append(f"{mo_path} is stale: run python scripts/compile_messages.py")
    return out


def main(argv: list[str]) -> int:
    if "--check" in argv:
        found = problems()
        print("\n".join(found) or "catalogs up to date")
        return 1 if found else 0
    for po_path in catalogs():
        po_path.with_suffix(".mo").write_bytes(compiled(po_path))
        print(f"compiled {po_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
