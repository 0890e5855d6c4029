"""Field types shared by every schema: cleaned text, whole numbers, vocabulary terms,
NPIs, taxonomy codes, ZIP codes and phone numbers.

Each field turns accepted spellings into one canonical value and answers a bad
value with a message a person can act on.
"""

from __future__ import annotations

import math
import re
import unicodedata

from marshmallow import ValidationError, fields, validate

from ..geo import lookup_zip, normalize_zip
from ..limits import MAX_ID
from ..npi import is_valid_npi
from ..taxonomy import TAXONOMY_CODE_RE
from ..vocab import VOCABULARIES


def clean_text(value: str) -> str:
    """Trim and collapse inner whitespace (apostrophes and case are kept)."""
    return re.sub(r"\s+", " ", value).strip()


_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class CleanString(fields.String):
    """A string trimmed with inner whitespace collapsed; blank becomes None when allowed.

    Control characters (NUL included, which PostgreSQL cannot store) and bidi
    overrides (which can disguise a name) are refused.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        text = clean_text(super()._deserialize(value, attr, data, **kwargs))
        if any(unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI_CONTROLS for ch in text):
            raise ValidationError("Must not contain control characters.")
        if not text:
            if self.allow_none:
                return None
            raise ValidationError("Must not be blank.")
        return text

    def _validate(self, value):
        if value is not None:  # a blank that became None has nothing left to check
            super()._validate(value)


class WholeNumber(fields.Integer):
    """An integer that refuses fractions and booleans instead of truncating them."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        if isinstance(value, float) and not value.is_integer():
            raise ValidationError("Not a valid integer.")
        if isinstance(value, str) and not re.fullmatch(r"\s*-?\d{1,9}\s*", value):
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)


class FiniteFloat(fields.Float):
    """A float that refuses NaN, infinities and booleans."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("Not a valid number.")
        number = super()._deserialize(value, attr, data, **kwargs)
        if not math.isfinite(number):
            raise ValidationError("Not a valid number.")
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
            raise ValidationError("A ZIP code is 5 digits (ZIP+4 is accepted).")
        if lookup_zip(five) is None:
            raise ValidationError(f"ZIP code {five} is not a known US ZIP code.")
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
