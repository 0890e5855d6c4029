"""The demo-data generator: deterministic, realistic and valid."""

import datetime as dt
from collections import Counter

import pytest

from referral.geo import lookup_zip
from referral.listing_rules import listing_problems
from referral.listings import complete_listing, full_listing
from referral.npi import is_valid_npi
from referral.schemas.listings import LISTING_FIELDS, ListingSchema
from seeds.generator import clinic_count, generate_clinics, generate_provider

NOW = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def directory():
    clinics = generate_clinics(clinic_count(2000), seed=3)
    return clinics, [generate_provider(3, i, clinics, NOW) for i in range(2000)]


def test_same_seed_same_directory(directory):
    clinics, providers = directory
    assert generate_clinics(len(clinics), seed=3) == clinics
    assert [generate_provider(3, i, clinics, NOW) for i in range(50)] == providers[:50]
    assert generate_provider(4, 0, clinics, NOW) != providers[0]


def test_realistic_mix(directory):
    clinics, providers = directory
    values = [v for _, v in providers]
    prescribers = sum(v["role"] == "prescriber" for v in values) / len(values)
    assert 0.25 < prescribers < 0.35
    assert {v["provider_type"] for v in values if v["role"] == "prescriber"} == {
        "psychiatrist", "psychiatric_np", "primary_care", "physician_assistant"}
    stale = sum(NOW - v["last_verified_at"] > dt.timedelta(days=90) for v in values) / len(values)
    assert 0.2 < stale < 0.4
    assert 0.15 < sum(v["sliding_scale"] for v in values) / len(values) < 0.35
    assert 0.6 < sum(v["telehealth"] for v in values) / len(values) < 0.8
    assert any(len(v["licensed_states"]) > 1 for v in values)
    states = Counter(c.state for c in clinics)
    assert len(states) > 20 and states.most_common(1)[0][1] < len(clinics) / 3
    assert len({v["npi"] for v in values}) == len(values)


def test_every_generated_listing_is_valid(directory):
    clinics, providers = directory
    schema = ListingSchema()
    for clinic in clinics:
        assert lookup_zip(clinic.zip).state == clinic.state and is_valid_npi(
            clinic.organization_npi)
    for _, values in providers:
        raw = {k: v for k, v in values.items() if k in LISTING_FIELDS and v is not None}
        loaded = schema.load(raw)  # raises on any invalid value
        assert listing_problems(loaded) == {}
        assert full_listing(complete_listing(loaded))["modalities"] == values["modalities"]
