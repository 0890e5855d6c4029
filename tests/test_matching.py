"""Unit tests of pair scoring and the prescriber finder through the in-memory search service.

Referral history comes from the (empty) test database."""

from __future__ import annotations

import pytest

from referral.extensions import db
from referral.matching import match_pairs
from referral.schemas.matching import MatchQuerySchema
from referral.search_service import InMemorySearchService
from search_index.ranking import WEIGHTS

load = MatchQuerySchema().load


@pytest.fixture
def pair_world(rendered):
    common = {"zip": "02115", "accepts_coordinated_care": True, "accepting_new_patients": True}
    therapist = rendered(clinic=(1, "Harbor"), last_name="Tee", **common)
    same_clinic = rendered(clinic=(1, "Harbor"), last_name="Same", provider_type="psychiatrist",
                           taxonomy_codes=["2084P0800X"], modalities=[], **common)
    other_clinic = rendered(clinic=(2, "Cove"), last_name="Other", provider_type="psychiatrist",
                            taxonomy_codes=["2084P0800X"], modalities=[], **common)
    refuses = rendered(clinic=(3, "Bay"), last_name="Alone", provider_type="psychiatrist",
                       taxonomy_codes=["2084P0800X"], modalities=[], zip="02115",
                       accepts_coordinated_care=False)
    return therapist, same_clinic, other_clinic, refuses


def test_pairs_need_coordination_and_same_clinic_adds_its_weight(app, pair_world):
    therapist, same_clinic, other_clinic, refuses = pair_world
    service = InMemorySearchService(pair_world)
    with app.app_context():
        answer = match_pairs(service, db.session, load({"zip": "02115", "concern": ["depression"]}),
                             dump_listing=None)
    pairs = {(p["therapist"]["id"], p["prescriber"]["id"]): p for p in answer["pairs"]}
    assert set(pairs) == {(therapist["id"], same_clinic["id"]),
                          (therapist["id"], other_clinic["id"])}
    same = pairs[(therapist["id"], same_clinic["id"])]
    other = pairs[(therapist["id"], other_clinic["id"])]
    assert same["score"] - other["score"] == pytest.approx(WEIGHTS.same_clinic, abs=2e-3)
    assert "Same clinic: Harbor" in same["reasons"]
    assert not any(reason.startswith("Same clinic") for reason in other["reasons"])
    assert answer["pairs"][0] is same


def test_no_provider_in_more_than_two_pairs(app, rendered):
    common = {"zip": "02115", "accepts_coordinated_care": True}
    therapists = [rendered(last_name=f"T{i}", **common) for i in range(2)]
    prescribers = [rendered(last_name=f"P{i}", provider_type="psychiatrist",
                            taxonomy_codes=["2084P0800X"], modalities=[], **common)
                   for i in range(3)]
    service = InMemorySearchService(therapists + prescribers)
    with app.app_context():
        answer = match_pairs(service, db.session, load({"zip": "02115", "limit": 9}),
                             dump_listing=None)
    counts: dict = {}
    for pair in answer["pairs"]:
        for side in ("therapist", "prescriber"):
            counts[pair[side]["id"]] = counts.get(pair[side]["id"], 0) + 1
    # All six combinations qualify; two pairs per provider leave room for four.
    assert len(answer["pairs"]) == 4 and max(counts.values()) == 2


def test_pair_reasons_are_true_of_unrelated_clinics_and_fees_are_ranges(app, rendered):
    """Issue 15: pairs at unrelated clinics do not "coordinate care with each other", and
    fees are the ranges of both, not the sum of the lowest fees."""
    common = {"zip": "02115", "accepts_coordinated_care": True, "sliding_scale": False}
    therapist = rendered(clinic=(1, "Harbor"), last_name="Tee", fee_min=35, fee_max=185,
                         modalities=["PSYCHODYNAMIC"], concerns=["grief"], **common)
    prescriber = rendered(clinic=(2, "Cove"), last_name="Pee", provider_type="psychiatrist",
                          taxonomy_codes=["2084P0800X"], modalities=[], fee_min=60, fee_max=200,
                          **common)
    service = InMemorySearchService([therapist, prescriber])
    with app.app_context():
        answer = match_pairs(service, db.session, load(
            {"zip": "02115", "concern": ["grief"], "max_combined_fee": "385"}), dump_listing=None)
        tight = match_pairs(service, db.session, load(
            {"zip": "02115", "concern": ["grief"], "max_combined_fee": "384"}), dump_listing=None)
    reasons = answer["pairs"][0]["reasons"]
    assert reasons[0] == "Both coordinate care and are taking new patients"
    assert not any("each other" in reason for reason in reasons)
    assert "Fees together $95\u2013$385 (therapist $35\u2013$185, prescriber $60\u2013$200)" \
        in reasons
    assert any(reason.startswith("Therapist offers Psychodynamic therapy") for reason in reasons)
    assert tight["pairs"] == []  # $95 of lowest fees fits $384, the ranges do not


def test_both_sides_sharing_one_memo_give_the_pairs_found_without_it(app):
    """The therapist and prescriber searches share the patient's masks through one memo:
    the same pairs, scores, candidates and reasons as each side searching alone."""
    import datetime as dt
    import random

    from tests.conftest import generated_directory

    class Plain(InMemorySearchService):
        def candidates(self, session, criteria, concerns=(), memo=None):
            return super().candidates(session, criteria, concerns)

    listings = generated_directory(800, seed=11)
    fast, plain = InMemorySearchService(listings), Plain(listings)
    rng = random.Random(4)
    now = dt.datetime.now(dt.UTC)
    found = 0
    with app.app_context():
        for _ in range(30):
            need = {"zip": rng.choice(listings)["zip"], "radius_miles": rng.choice([10, 50]),
                    "concern": [rng.choice(["anxiety", "depression", "ocd", "ptsd"])]}
            if rng.random() < 0.5:
                need["insurance"] = [rng.choice(["aetna", "cigna", "medicaid"])]
            if rng.random() < 0.3:
                need["telehealth"] = True
            if rng.random() < 0.3:
                need["max_combined_fee"] = rng.choice([300, 400])
            params = load(need)
            answer = match_pairs(fast, db.session, params, dump_listing=None, now=now)
            assert answer == match_pairs(plain, db.session, params, dump_listing=None, now=now)
            found += bool(answer["pairs"])
    assert found >= 10
