"""Property-based tests (hypothesis) of the validators and the NPI check digit."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from referral.errors import Invalid
from referral.listing_csv import rows_from_csv
from referral.npi import is_valid_npi, make_npi
from referral.nppes import five_digit_zip
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
