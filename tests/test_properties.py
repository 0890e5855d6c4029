"""Property-based tests (hypothesis) of the validators, the text-cleaning rule, CSV
reading and the NPI check digit."""

from __future__ import annotations

import string
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from referral.errors import Invalid
from referral.listing_csv import rows_from_csv
from referral.npi import is_valid_npi, make_npi
from referral.nppes import five_digit_zip
from referral.schemas.fields import clean_text
from referral.schemas.listings import ListingSchema
from referral.schemas.search import SearchQuerySchema
from referral.vocab import VOCABULARIES

bodies = st.text(alphabet=string.digits, min_size=9, max_size=9)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)


@given(bodies)
def test_a_made_npi_is_valid_and_any_single_digit_change_is_not(body):
    npi = make_npi(body)
    assert is_valid_npi(npi)
    for position in range(10):
        for digit in string.digits:
            if digit != npi[position]:
                assert not is_valid_npi(npi[:position] + digit + npi[position + 1:])


@given(st.text(max_size=12))
def test_only_ten_digit_strings_can_be_npis(text):
    if is_valid_npi(text):
        assert len(text) == 10 and text.isdigit()


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(ListingSchema().fields) + ["other"]), json_values,
                       max_size=12))
def test_listing_validation_only_ever_says_valid_or_invalid(payload):
    try:
        loaded = ListingSchema().load(payload)
    except ValidationError:
        return
    assert loaded["npi"] and is_valid_npi(loaded["npi"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(SearchQuerySchema().fields)), st.text(max_size=20),
                       max_size=8))
def test_search_parameters_only_ever_say_valid_or_invalid(params):
    try:
        loaded = SearchQuerySchema().load(params)
    except ValidationError:
        return
    assert 1 <= loaded["radius_miles"] <= 250 and loaded["per_page"] <= 100


@given(st.sampled_from(sorted(VOCABULARIES)), st.data())
def test_every_canonical_value_reads_back_as_itself_in_any_case(name, data):
    vocabulary = VOCABULARIES[name]
    value = data.draw(st.sampled_from(vocabulary.canonical))
    assert vocabulary.lookup(value) == value
    assert vocabulary.lookup(value.upper()) == value and vocabulary.lookup(value.lower()) == value


@given(st.text(max_size=12))
def test_practice_zip_is_five_digits_or_nothing(value):
    five = five_digit_zip(value)
    assert five is None or (len(five) == 5 and five.isdigit() and value.strip().startswith(five))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_csv_uploads_either_parse_or_are_refused_cleanly(data):
    try:
        rows = rows_from_csv(data)
    except Invalid:
        return
    assert isinstance(rows, list)


# The one cleaning rule (referral.schemas.fields.clean_text) for any text.

# The rule as issue 11 states it, written out here rather than imported, so that a
# change to the module's sets cannot also change what the test expects.
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_STRIPPED = set("\u200b\u2060\ufeff\u180e")
_WHITESPACE_CONTROLS = set("\t\n\v\f\r")
_INVISIBLE = sorted(_STRIPPED | _WHITESPACE_CONTROLS) + [
    "\u200c", "\u200d", "\u00a0", "\u2028", "\u3000", " "]
_REFUSED = sorted(_BIDI) + ["\x00", "\x1f", "\x85", "\x7f", "\ud800", "\udfff"]


def _text(characters):
    """Text of up to 40 characters drawn from ``characters`` (kept apart from one another:
    ``st.text`` would merge them into one range where the rare ones are never drawn)."""
    return st.lists(characters, max_size=40).map("".join)


#: Text the rule accepts: any code point but controls, surrogates and bidi controls, with
#: the stripped, joining and space characters often.
acceptable_text = _text(st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=_BIDI)
                        | st.sampled_from(_INVISIBLE))
#: Any text: acceptable text, often with refused characters, or any code points at all.
any_text = acceptable_text | _text(st.characters(exclude_categories=())) | st.builds(
    lambda head, bad, tail: head + bad + tail,
    acceptable_text, st.sampled_from(_REFUSED), acceptable_text)


def _refused(ch: str) -> bool:
    return ch in _BIDI or (unicodedata.category(ch) in ("Cc", "Cs")
                           and ch not in _WHITESPACE_CONTROLS)


@settings(max_examples=1000, deadline=None)
@given(any_text)
def test_cleaning_refuses_or_gives_clean_idempotent_text(text):
    try:
        cleaned = clean_text(text)
    except ValidationError:
        assert any(_refused(ch) for ch in text)
        return
    assert not any(_refused(ch) for ch in text)
    assert not any(_refused(ch) or ch in _STRIPPED for ch in cleaned)
    assert cleaned == cleaned.strip() and "  " not in cleaned
    assert all(ch == " " or not ch.isspace() for ch in cleaned)
    assert clean_text(cleaned) == cleaned
    assert cleaned.encode("utf-8").decode("utf-8") == cleaned  # storable: no surrogates
    kept = [ch for ch in text if not ch.isspace() and ch not in _STRIPPED]
    assert [ch for ch in cleaned if ch != " "] == kept  # nothing else is lost or reordered


@settings(max_examples=300, deadline=None)
@given(any_text, st.sampled_from(["first_name", "bio", "email", "website"]))
def test_every_cleaned_listing_field_stores_only_clean_text(text, field):
    try:
        value = ListingSchema(partial=True).load({field: text}).get(field)  # blank: absent
    except ValidationError:
        return
    assert value is None or (clean_text(value) == value
                             and not any(ch in _STRIPPED for ch in value))
