"""Field types shared by every schema: cleaned text, whole numbers, vocabulary terms,
NPIs, taxonomy codes, ZIP codes and phone numbers.

Each field turns accepted spellings into one canonical value and answers a bad
value with a message a person can act on.

The one cleaning rule for text (``clean_text``), applied by every free-text input
field: ``CleanString`` (names, bio, address, token labels, the search ``q``),
``Email`` and ``Url``. Per class of character:

- **Refused** (422 with the code point named): control characters (category Cc,
  NUL included: PostgreSQL cannot store it) other than the whitespace controls
  below; lone surrogates (Cs: no UTF-8 encoding exists, so no database or page
  can hold them); bidi controls (U+061C, U+200E/U+200F, U+202A-U+202E,
  U+2066-U+2069), which can make a name or a link read differently from what it
  is. These are refused rather than stripped because they never belong in a
  listing: a value that carries them was produced by a bug or an attack, and
  silently changing it would hide both.
- **Stripped**: invisible characters that copy-and-paste brings in and that
  change nothing a person sees: zero-width space U+200B, word joiner U+2060,
  byte-order mark U+FEFF and Mongolian vowel separator U+180E (no longer a
  space since Unicode 6.3). ``Ann`` + U+200B + ``Marie`` becomes ``AnnMarie``.
- **Kept**: zero-width joiner and non-joiner (U+200D, U+200C): Persian, Hindi,
  Malayalam and other scripts, and emoji sequences, need them to spell words.
- **Whitespace**: tab, line feed, vertical tab, form feed, carriage return and
  every Unicode space are collapsed to one space and trimmed, as before (a bio
  pasted with line breaks reads as one paragraph). Text written as several lines
  (``CleanLines``: messages and notes between clinics) keeps its line breaks:
  ``\r\n`` and ``\r`` become ``\n``, other whitespace within a line collapses
  to one space, each line is trimmed, and more than one blank line in a row
  becomes one.

The result of ``clean_text`` contains no refused or stripped character, and
cleaning it again changes nothing.
"""

from __future__ import annotations

import math
import re
import unicodedata

from marshmallow import ValidationError, fields, validate

from ..geo import lookup_zip, normalize_zip
from ..i18n import N_, gettext
from ..limits import MAX_ID
from ..npi import is_valid_npi
from ..taxonomy import TAXONOMY_CODE_RE
from ..vocab import VOCABULARIES

#: Controls that are whitespace: collapsed to one space like any other space.
WHITESPACE_CONTROLS = frozenset("\t\n\v\f\r")
#: Bidirectional formatting controls (Unicode property Bidi_Control): refused.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")
#: Invisible characters that change nothing a reader sees: stripped.
STRIPPED = frozenset("\u200b\u2060\ufeff\u180e")
_STRIP_TABLE = dict.fromkeys(map(ord, STRIPPED))


def refused_character(value: str) -> str | None:
    """The first character the cleaning rule refuses in ``value``, or None."""
    for ch in value:
        if ch in BIDI_CONTROLS:
            return ch
        if unicodedata.category(ch) in ("Cc", "Cs") and ch not in WHITESPACE_CONTROLS:
            return ch
    return None


def clean_text(value: str) -> str:
    """The one cleaning rule (module docstring): refuse controls, lone surrogates and bidi
    controls (``ValidationError``), strip invisible characters, collapse whitespace."""
    found = refused_character(value)
    if found is not None:
        if found in BIDI_CONTROLS:
            message = N_("Must not contain a text-direction control (U+%(code)s).")
        elif unicodedata.category(found) == "Cs":
            message = N_("Must not contain a lone surrogate (U+%(code)s).")
        else:
            message = N_("Must not contain a control character (U+%(code)s).")
        raise ValidationError(gettext(message, code=f"{ord(found):04X}"))
    return re.sub(r"\s+", " ", value.translate(_STRIP_TABLE)).strip()


#: Line breaks, for text that keeps its lines (``CleanLines``).
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029]")


def clean_lines(value: str) -> str:
    """The cleaning rule for text written as several lines: as ``clean_text`` within each
    line, line breaks kept, at most one blank line in a row."""
    lines = [clean_text(line) for line in _LINE_BREAKS.split(value)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


class _Cleaned:
    """Mixin for string fields: the cleaning rule before validation. A blank value stays
    ``""`` with ``allow_blank=True``, becomes None when the field allows None, and is
    refused otherwise."""

    def __init__(self, *args, allow_blank: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.allow_blank = allow_blank

    #: The rule applied (``clean_text``; ``CleanLines`` keeps line breaks).
    clean = staticmethod(clean_text)

    def _deserialize(self, value, attr, data, **kwargs):
        text = self.clean(super()._deserialize(value, attr, data, **kwargs))
        if not text and not self.allow_blank:
            if self.allow_none:
                return None
            raise ValidationError(gettext("Must not be blank."))
        return text

    def _validate(self, value):
        if value is not None:  # a blank that became None has nothing left to check
            super()._validate(value)


class CleanString(_Cleaned, fields.String):
    """Free text under the cleaning rule: trimmed, inner whitespace collapsed, invisible
    characters stripped, controls and bidi controls refused (blank: see ``_Cleaned``)."""


class CleanLines(CleanString):
    """Free text under the cleaning rule that keeps its line breaks (``clean_lines``):
    messages and notes between clinics."""

    clean = staticmethod(clean_lines)


class Email(_Cleaned, fields.Email):
    """An email address under the cleaning rule, then checked as an address."""


class Url(_Cleaned, fields.URL):
    """A URL under the cleaning rule, then checked as a URL."""


class WholeNumber(fields.Integer):
    """An integer that refuses fractions and booleans instead of truncating them."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError(gettext("Not a valid integer."))
        if isinstance(value, float) and not value.is_integer():
            raise ValidationError(gettext("Not a valid integer."))
        if isinstance(value, str) and not re.fullmatch(r"\s*-?\d{1,9}\s*", value):
            raise ValidationError(gettext("Not a valid integer."))
        return super()._deserialize(value, attr, data, **kwargs)


class FiniteFloat(fields.Float):
    """A float that refuses NaN, infinities and booleans."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError(gettext("Not a valid number."))
        number = super()._deserialize(value, attr, data, **kwargs)
        if not math.isfinite(number):
            raise ValidationError(gettext("Not a valid number."))
        return number


class Term(fields.String):
    """One value of a controlled vocabulary: any accepted spelling in, canonical value out."""

    def __init__(self, vocabulary: str, **kwargs):
        self.vocabulary = VOCABULARIES[vocabulary]
        kwargs.setdefault("metadata", {})
        kwargs["metadata"].setdefault("enum", list(self.vocabulary.canonical))
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        canonical = self.vocabulary.lookup(text)
        if canonical is None:
            raise ValidationError(
                f"Unknown {self.vocabulary.name} {text!r}; use one of: "
                + ", ".join(self.vocabulary.canonical) + ".")
        return canonical


class Terms(fields.List):
    """A list of vocabulary values, deduplicated and put in the vocabulary's order."""

    def __init__(self, vocabulary: str, **kwargs):
        self.vocabulary = VOCABULARIES[vocabulary]
        kwargs.setdefault("load_default", list)
        super().__init__(Term(vocabulary), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if value is None:
            return []
        return self.vocabulary.order(super()._deserialize(value, attr, data, **kwargs))


class Npi(fields.String):
    """A ten-digit NPI with a valid check digit."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not re.fullmatch(r"\d{10}", text):
            raise ValidationError("An NPI is exactly 10 digits.")
        if not is_valid_npi(text):
            raise ValidationError("Invalid NPI: the check digit does not match.")
        return text


class TaxonomyCode(fields.String):
    """A NUCC taxonomy code such as 2084P0800X (upper-cased)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if not TAXONOMY_CODE_RE.match(text):
            raise ValidationError(f"{text!r} is not a NUCC taxonomy code (e.g. 2084P0800X).")
        return text


class Zip(fields.String):
    """A US ZIP code that exists in the bundled ZIP data; ZIP+4 is cut to five digits."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        five = normalize_zip(text)
        if five is None:
            raise ValidationError(gettext("A ZIP code is 5 digits (ZIP+4 is accepted)."))
        if lookup_zip(five) is None:
            raise ValidationError(gettext("ZIP code %(zip)s is not a known US ZIP code.",
                                          zip=five))
        return five


class Phone(fields.String):
    """A US phone number, stored as its 10 digits."""

    def _deserialize(self, value, attr, data, **kwargs):
        digits = re.sub(r"\D", "", super()._deserialize(value, attr, data, **kwargs))
        if len(digits) == 11 and digits.startswith("1"):
            digits = digits[1:]
        if len(digits) != 10:
            raise ValidationError("A US phone number has 10 digits.")
        return digits


#: Database ids are 32-bit on every backend.
ID_RANGE = validate.Range(min=1, max=MAX_ID)
