"""Unit tests of the listing rules and of the one declaration of a listing's fields."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import inspect

from referral.listing_csv import rows_from_csv, rows_to_csv
from referral.listing_rules import is_stale, listing_problems, role_for_provider_type
from referral.models import Provider
from referral.schemas.listings import (
    FORM_FIELDS,
    LIST_FIELDS,
    LISTING_FIELDS,
    ListingSchema,
    ProviderSchema,
    listing_label,
)


def test_every_declared_field_is_a_provider_column_and_an_output_field():
    columns = {column.key for column in inspect(Provider).columns}
    assert set(LISTING_FIELDS) <= columns
    output = set(ProviderSchema().fields)
    assert set(LISTING_FIELDS) <= output
    assert {"id", "clinic", "last_verified_at", "stale", "active"} <= output


def test_derived_sets_follow_the_declaration():
    declared = ListingSchema().fields
    assert LIST_FIELDS == ("taxonomy_codes", "modalities", "concerns", "age_groups", "languages",
                           "specialties", "licensed_states", "insurance")
    checkboxes = {f["name"] for f in FORM_FIELDS if f["widget"] == "checkbox"}
    assert checkboxes == {name for name, f in declared.items() if type(f).__name__ == "Boolean"}
    assert LISTING_FIELDS[0] == "npi" and len(LISTING_FIELDS) == len(declared)
    form = {f["name"]: f["widget"] for f in FORM_FIELDS}
    assert "npi" not in form and "role" not in form and "latitude" not in form
    assert form["bio"] == "textarea" and form["telehealth"] == "checkbox"
    assert form["modalities"] == "checkboxes" and form["provider_type"] == "select"
    assert form["licensed_states"] == "text_list" and form["fee_min"] == "number"
    assert listing_label("fee_min") == "Lowest fee ($)"


def test_the_csv_header_is_the_declaration(listing):
    text = rows_to_csv([listing()])
    assert text.splitlines()[0].split(",") == list(LISTING_FIELDS)
    assert rows_from_csv(text)[0]["modalities"] == ["CBT", "DBT"]


def test_fee_range_and_care_mode_rules(listing):
    values = ListingSchema().load(listing())
    assert listing_problems(values) == {}
    assert "fee_min" in listing_problems({**values, "fee_min": 200, "fee_max": 100})
    assert "fee_max" in listing_problems({**values, "fee_max": None})
    assert "in_person" in listing_problems({**values, "telehealth": False, "in_person": False})
    assert "licensed_states" in listing_problems(
        {**values, "in_person": False, "licensed_states": [], "state": None, "zip": None,
         "address_line1": None})


def test_roles_follow_provider_types_and_taxonomy(listing):
    values = ListingSchema().load(listing())
    assert role_for_provider_type("psychiatric_np") == "prescriber"
    wrong = listing_problems({**values, "role": "prescriber"})
    assert "role" in wrong
    trap = listing_problems({**values, "taxonomy_codes": ["163WP0808X"]})
    assert "not listed in this directory" in trap["taxonomy_codes"][0]


def test_zip_must_lie_in_the_state(listing):
    values = ListingSchema().load(listing())
    problems = listing_problems({**values, "zip": "10001"})
    assert problems["zip"] == ["ZIP code 10001 is in NY, not MA."]


def test_staleness_boundary():
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    assert is_stale(None, 90, now)
    assert not is_stale(now - dt.timedelta(days=90), 90, now)
    assert is_stale(now - dt.timedelta(days=90, seconds=1), 90, now)
