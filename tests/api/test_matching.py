"""Therapist + prescriber pairs and the prescriber finder, checked independently."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from geopy.distance import geodesic

from referral.geo import lookup_zip
from referral.vocab import CONCERN_MODALITIES
from tests.conftest import assert_error_shape, bearer

MATCH = "/api/v1/match"
DAY = dt.timedelta(days=1)


def can_see(provider, point, state, radius, params):
    telehealth = params.get("telehealth")
    in_person = params.get("in_person")
    tele_mode = telehealth == "true" or (telehealth is None and in_person != "true")
    person_mode = in_person == "true" or (in_person is None and telehealth != "true")
    if tele_mode and provider.telehealth and state in provider.licensed_states:
        return True
    if person_mode and provider.in_person:
        if point is None:
            return provider.state == state
        return geodesic(point, (provider.latitude, provider.longitude)).miles <= radius
    return False


def check_pair(therapist, prescriber, params, now):
    """Every hard constraint, re-checked from the listings themselves."""
    point, state = None, params.get("state")
    if "zip" in params:
        place = lookup_zip(params["zip"])
        point, state = (place.latitude, place.longitude), state or place.state
    radius = float(params.get("radius_miles", 25))
    assert therapist.role == "therapist" and prescriber.role == "prescriber"
    for provider in (therapist, prescriber):
        assert provider.active and provider.accepts_coordinated_care
        assert provider.accepting_new_patients
        assert now - provider.last_verified_at <= 365 * DAY
        assert can_see(provider, point, state, radius, params), provider.id
        if "max_fee" in params:
            # the whole fee range within the budget (search's rule)
            assert provider.fee_min is not None and \
                max(provider.fee_min, provider.fee_max or 0) <= int(params["max_fee"])
        if "insurance" in params:
            assert params["insurance"] in provider.insurance
        if "language" in params:
            assert params["language"] in provider.languages
    concerns = params.get("concern", [])
    concerns = concerns if isinstance(concerns, list) else [concerns]
    suited = {m for c in concerns for m in CONCERN_MODALITIES[c]}
    if "modality" in params:
        suited = {params["modality"]}
    if suited:
        assert suited & set(therapist.modalities)
    if "age_group" in params:
        assert params["age_group"] in prescriber.age_groups
        assert params["age_group"] in therapist.age_groups
    if "prescriber_type" in params:
        assert prescriber.provider_type == params["prescriber_type"]
    if "max_combined_fee" in params:
        # both whole ranges together within the budget
        assert (max(therapist.fee_min, therapist.fee_max or 0)
                + max(prescriber.fee_min, prescriber.fee_max or 0)
                <= int(params["max_combined_fee"]))


CASES = [
    {"zip": "10001", "concern": "ocd"},
    {"zip": "10001", "concern": "ptsd", "insurance": "aetna", "age_group": "adult"},
    {"state": "CA", "telehealth": "true", "concern": ["depression", "anxiety"],
     "max_combined_fee": "500"},  # both whole fee ranges must fit (issue 15)
    {"zip": "60601", "radius_miles": "100", "modality": "CBT", "max_fee": "250",
     "prescriber_type": "psychiatric_np"},
    {"zip": "77002", "in_person": "true", "radius_miles": "150", "concern": "bipolar"},
    {"state": "TX", "concern": "adhd", "age_group": "adolescent", "language": "en"},
]


@pytest.mark.parametrize("params", CASES, ids=[str(i) for i in range(len(CASES))])
def test_every_pair_meets_the_hard_constraints_and_pairs_are_diverse(directory, params):
    app, providers = directory
    by_id = {p.id: p for p in providers}
    body = app.test_client().get(MATCH, query_string={**params, "limit": 10}).json
    pairs = body["pairs"]
    assert pairs, body
    now = dt.datetime.now(dt.UTC)
    for pair in pairs:
        check_pair(by_id[pair["therapist"]["id"]], by_id[pair["prescriber"]["id"]], params, now)
        assert pair["reasons"] and all(isinstance(r, str) and r for r in pair["reasons"])
        assert "responsiveness" in pair["prescriber"]
    appearances = Counter([p["therapist"]["id"] for p in pairs]
                          + [p["prescriber"]["id"] for p in pairs])
    assert max(appearances.values()) <= 2
    scores = [pair["score"] for pair in pairs]
    assert scores == sorted(scores, reverse=True)
    assert len({(p["therapist"]["id"], p["prescriber"]["id"]) for p in pairs}) == len(pairs)


def test_the_best_pair_explains_itself(directory):
    app, _ = directory
    pair = app.test_client().get(MATCH, query_string={"zip": "10001", "concern": "ocd"}).json[
        "pairs"][0]
    text = " ".join(pair["reasons"])
    assert "suited to OCD" in text and "Both coordinate care" in text
    assert "Therapist sees you" in text and "Prescriber sees you" in text


@pytest.mark.parametrize("query", [
    {}, {"concern": "ocd"}, {"zip": "10001", "limit": "51"}, {"zip": "10001", "limit": "0"},
    {"zip": "10001", "prescriber_type": "counselor"}, {"zip": "10001", "bogus": "1"},
    {"zip": "10001", "max_combined_fee": "-1"}, {"in_person": "true", "state": "NY"},
    {"zip": "10001", "telehealth": "false", "in_person": "false"},
])
def test_bad_match_parameters_are_422(directory, query):
    app, _ = directory
    assert_error_shape(app.test_client().get(MATCH, query_string=query), 422)


def test_prescriber_finder_lists_only_prescribers_who_can_take_the_referral(directory):
    app, providers = directory
    by_id = {p.id: p for p in providers}
    therapist = next(p for p in providers if p.role == "therapist" and p.active)
    client = app.test_client()
    params = {"zip": "10001", "radius_miles": "50"}
    body = client.get(f"/api/v1/providers/{therapist.id}/prescribers",
                      query_string={**params, "per_page": 100}).json
    assert body["items"] and body["total"] >= len(body["items"])
    now = dt.datetime.now(dt.UTC)
    for item in body["items"]:
        prescriber = by_id[item["id"]]
        assert prescriber.role == "prescriber" and prescriber.accepts_coordinated_care
        assert prescriber.accepting_new_patients and now - prescriber.last_verified_at <= 365 * DAY
        place = lookup_zip("10001")
        assert can_see(prescriber, (place.latitude, place.longitude), "NY", 50, params)
        assert set(item["responsiveness"]) == {"referrals_answered", "accepted_share",
                                               "median_response_hours"}
        assert item["reasons"]
    assert_error_shape(client.get(f"/api/v1/providers/{therapist.id}/prescribers"), 422)
    prescriber = next(p for p in providers if p.role == "prescriber")
    assert_error_shape(client.get(f"/api/v1/providers/{prescriber.id}/prescribers",
                                  query_string=params), 404)
    assert_error_shape(client.get("/api/v1/providers/99999999/prescribers",
                                  query_string=params), 404)


def _prescriber(create, token, last_name):
    return create(token, first_name="Pat", last_name=last_name, provider_type="psychiatrist",
                  credentials="MD", taxonomy_codes=["2084P0800X"], modalities=[],
                  accepts_coordinated_care=True, wait_days=5)


def _refer(client, token, therapist_id, prescriber_id, ref):
    response = client.post("/api/v1/referrals", json={
        "therapist_id": therapist_id, "prescriber_id": prescriber_id, "patient_ref": ref,
        "patient_state": "MA", "concerns": ["depression"], "contact_preference": "phone",
        "consent_to_coordinate": True}, headers=bearer(token))
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_responsiveness_and_shared_history_feed_the_ranking(app, client, make_clinic, create):
    _, therapy_token = make_clinic("Therapy Place")
    _, fast_token = make_clinic("Fast Psychiatry")
    _, slow_token = make_clinic("Slow Psychiatry")
    therapist = create(therapy_token, last_name="Referrer", accepts_coordinated_care=True,
                       modalities=["ERP", "CBT"])
    fast = _prescriber(create, fast_token, "Quickly")
    slow = _prescriber(create, slow_token, "Slowly")
    for n in range(5):
        if n == 4:  # four answers: not yet public
            early = client.get(f"/api/v1/providers/{therapist['id']}/prescribers",
                               query_string={"zip": "02115"}).json["items"]
            assert early[0]["responsiveness"] == {"referrals_answered": None,
                                                  "accepted_share": None,
                                                  "median_response_hours": None}
            assert early[0]["id"] == fast["id"]  # the ranking uses them all the same
        fast_referral = _refer(client, therapy_token, therapist["id"], fast["id"], f"F{n}")
        client.post(f"/api/v1/referrals/{fast_referral}/status", json={"status": "accepted"},
                    headers=bearer(fast_token))
        slow_referral = _refer(client, therapy_token, therapist["id"], slow["id"], f"S{n}")
        client.post(f"/api/v1/referrals/{slow_referral}/status",
                    json={"status": "rejected", "reason": "no_capacity"},
                    headers=bearer(slow_token))
    url = f"/api/v1/providers/{therapist['id']}/prescribers"
    items = client.get(url, query_string={"zip": "02115"}).json["items"]
    assert [item["id"] for item in items] == [fast["id"], slow["id"]]
    assert items[0]["responsiveness"]["accepted_share"] == 1.0
    assert items[0]["responsiveness"]["referrals_answered"] == 5
    assert items[1]["responsiveness"]["accepted_share"] == 0.0
    assert any(r.startswith("Prescriber answers referrals in about") for r in items[0]["reasons"])
    pairs = client.get(MATCH, query_string={"zip": "02115", "concern": "ocd"}).json["pairs"]
    assert [(p["therapist"]["id"], p["prescriber"]["id"]) for p in pairs] == [
        (therapist["id"], fast["id"]), (therapist["id"], slow["id"])]
    # a completed referral together ranks the pair higher, but no public answer names it
    before = next(p for p in pairs if p["prescriber"]["id"] == slow["id"])["score"]
    referral_id = _refer(client, therapy_token, therapist["id"], slow["id"], "S9")
    # (issue 12: scheduling carries the appointment time)
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    for body in ({"status": "accepted"}, {"status": "scheduled", "appointment_at": tomorrow},
                 {"status": "completed"}):
        response = client.post(f"/api/v1/referrals/{referral_id}/status", json=body,
                               headers=bearer(slow_token))
        assert response.status_code == 200, response.json
    pairs = client.get(MATCH, query_string={"zip": "02115", "concern": "ocd"}).json["pairs"]
    slow_pair = next(p for p in pairs if p["prescriber"]["id"] == slow["id"])
    assert slow_pair["score"] > before
    assert not any("together" in reason or "completed" in reason
                   for pair in pairs for reason in pair["reasons"])
    finder = client.get(url, query_string={"zip": "02115"}).json["items"]
    assert not any("completed" in reason for item in finder for reason in item["reasons"])
