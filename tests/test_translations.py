"""The Spanish catalog is complete and current: every string marked in the templates and the
Python sources (extracted with babel's own API and babel.cfg, as ``make translations`` does)
has a Spanish translation with the same placeholders, nothing is fuzzy or left over, and the
committed .mo is the compiled .po. A branch that adds a string without translating it, or
without running ``make translations``, fails here."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
CATALOG = ROOT / "referral" / "translations" / "es" / "LC_MESSAGES"


def extracted() -> dict[str, str]:
    """Every marked msgid (the singular of a plural) -> where it was found."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault(msgid, f"{filename}:{lineno}")
    return found


@pytest.fixture(scope="module")
def catalog():
    with open(CATALOG / "messages.po", "rb") as po:
        return read_po(po, locale="es")


def test_extraction_finds_the_patient_pages_strings():
    found = extracted()
    # one from a template, one from Python made at request time, one declared with N_
    assert "Find a therapist or prescriber" in found and "referral/templates" in \
        found["Find a therapist or prescriber"]
    assert "Speaks %(languages)s" in found and found["Speaks %(languages)s"].startswith(
        "referral/search.py")
    assert "Couples counseling" in found


def test_every_marked_string_has_a_spanish_translation(catalog):
    untranslated = []
    for msgid, where in sorted(extracted().items()):
        message = catalog.get(msgid)
        strings = () if message is None else (
            message.string if isinstance(message.string, tuple) else (message.string,))
        if message is None or message.fuzzy or not all(strings):
            untranslated.append(f"{where}: {msgid!r}")
    assert not untranslated, ("untranslated (run `make translations`, then write the "
                              "Spanish in messages.po):\n" + "\n".join(untranslated))


def test_the_catalog_has_no_leftovers_and_placeholders_match(catalog):
    found = extracted()
    leftovers = [m.id for m in catalog if m.id and
                 (m.id[0] if isinstance(m.id, tuple) else m.id) not in found]
    assert not leftovers, f"no longer in the sources (run `make translations`): {leftovers}"
    problems = [(message.id, [str(e) for e in errors]) for message, errors in catalog.check()]
    for message in catalog:  # babel accepts a translation without any placeholder: not here
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        problems += [(message.id, text) for text in strings
                     if message.id and set(PLACEHOLDER.findall(text)) != wanted]
    assert not problems


def test_the_committed_mo_is_the_compiled_po(catalog):
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    assert (CATALOG / "messages.mo").read_bytes() == compiled.getvalue(), \
        "messages.mo is stale: run `make translations`"
