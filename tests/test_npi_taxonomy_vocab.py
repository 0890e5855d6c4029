"""NPI check digits, taxonomy roles and controlled vocabularies (plain functions)."""

import pytest

from referral.npi import is_valid_npi, make_npi, npi_check_digit
from referral.taxonomy import provider_type_for_code, role_for_codes
from referral.vocab import VOCABULARIES


def test_check_digit_matches_the_cms_example():
    assert npi_check_digit("123456789") == 3
    assert make_npi("123456789") == "1234567893"
    assert is_valid_npi("1234567893")


@pytest.mark.parametrize("value", ["1234567890", "123456789", "12345678930", "abcdefghij",
                                   "", None, 1234567893, " 1234567893", "1234567893\n",
                                   "١٢٣٤٥٦٧٨٩٣", "１２３４５６７８９３"])
def test_invalid_npis(value):
    assert not is_valid_npi(value)


def test_check_digits_are_luhns_over_the_80840_prefix():
    import random

    def luhn(body: str) -> int:
        total = 0
        for position, digit in enumerate(reversed("80840" + body)):
            value = int(digit) * (2 if position % 2 == 0 else 1)
            total += value - 9 if value > 9 else value
        return (10 - total % 10) % 10

    rng = random.Random(3)
    for body in ["000000000", "999999999"] + [f"{rng.randrange(10 ** 9):09d}"
                                              for _ in range(5000)]:
        assert npi_check_digit(body) == luhn(body), body


def test_a_body_of_other_digits_has_no_check_digit():
    for body in ("١٢٣٤٥٦٧٨٩", "12345678\u0663", "12345678", "123456789\n"):
        with pytest.raises(ValueError):
            npi_check_digit(body)


def test_every_single_digit_change_is_caught():
    valid = "1234567893"
    for position in range(10):
        for digit in "0123456789":
            if digit != valid[position]:
                changed = valid[:position] + digit + valid[position + 1:]
                assert not is_valid_npi(changed), changed


@pytest.mark.parametrize("codes, states, role", [
    (["1041C0700X"], [], "therapist"),
    (["2084P0800X"], [], "prescriber"),
    (["207Q00000X", "2084P0800X"], [], "prescriber"),     # psychiatry in a later slot
    (["1041C0700X", "363LP0808X"], [], "prescriber"),     # prescriber beats therapist
    (["363L00000X"], [], "prescriber"),                   # other nurse practitioners
    (["163WP0808X"], [], None),                           # psychiatric RN trap
    (["101YS0200X", "1041S0200X", "106S00000X"], [], None),
    (["103TP0016X"], ["NM"], "prescriber"),
    (["103TP0016X"], ["NY"], "therapist"),
    (["103TC0700X"], [], "therapist"),
    (["103TS0200X"], [], None),                           # school psychologist
    (["207X00000X"], [], None),                           # orthopaedics: not ours
])
def test_role_for_codes(codes, states, role):
    assert role_for_codes(codes, states) == role


def test_provider_type_for_code():
    assert provider_type_for_code("363LP0808X") == ("prescriber", "psychiatric_np")
    assert provider_type_for_code("106H00000X") == ("therapist", "marriage_family_therapist")


@pytest.mark.parametrize("vocabulary, spelling, canonical", [
    ("modality", "cbt-i", "CBT-I"), ("modality", "Psychodynamic", "PSYCHODYNAMIC"),
    ("concern", "Substance Use", "substance_use"), ("concern", "OCD", "ocd"),
    ("age_group", "older adult", "older_adult"), ("language", "Spanish", "es"),
    ("language", "ASL", "ase"), ("insurance", "Blue Cross Blue Shield", "bcbs"),
    ("insurance", "UHC", "unitedhealthcare"), ("state", "massachusetts", "MA"),
    ("state", "pr", "PR"), ("provider_type", "LCSW", "clinical_social_worker"),
])
def test_vocabulary_spellings(vocabulary, spelling, canonical):
    assert VOCABULARIES[vocabulary].lookup(spelling) == canonical


def test_unknown_terms_are_none_and_order_is_canonical():
    assert VOCABULARIES["modality"].lookup("reiki") is None
    assert VOCABULARIES["state"].lookup("ZZ") is None
    assert VOCABULARIES["modality"].order(["DBT", "CBT", "DBT"]) == ["CBT", "DBT"]
