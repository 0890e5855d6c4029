"""Patient search over a generated directory, checked against an independent recount.

The oracle below re-implements every filter in plain Python over the listings
read back from the database (distances with geopy's geodesic), so a result is
only right if it agrees with the documented meaning of each parameter.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from geopy.distance import geodesic

from referral.crisis import CRISIS_MESSAGE
from referral.extensions import db
from referral.geo import lookup_zip, nearest_place
from referral.models import Provider
from referral.vocab import CONCERN_MODALITIES, gender_category
from tests.conftest import assert_error_shape

URL = "/api/v1/providers/search"
DAY = dt.timedelta(days=1)


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def oracle(providers, params, now):
    """Ids of the listings that satisfy ``params``, computed independently."""
    truthy = {"true": True, "false": False}
    telehealth = truthy.get(params.get("telehealth"))
    in_person = truthy.get(params.get("in_person"))
    point, state = None, params.get("state")
    if "zip" in params:
        place = lookup_zip(params["zip"])
        point, state = (place.latitude, place.longitude), state or place.state
    elif "lat" in params:
        point = (float(params["lat"]), float(params["lon"]))
        state = state or nearest_place(*point).state
    tele_mode = telehealth is True or (telehealth is None and in_person is not True)
    person_mode = in_person is True or (in_person is None and telehealth is not True)
    radius = float(params.get("radius_miles", 25))
    modalities = as_list(params.get("modality"))
    concerns = as_list(params.get("concern"))
    suited = set() if modalities else {m for c in concerns for m in CONCERN_MODALITIES[c]}
    found = set()
    for p in providers:
        if not p.active:
            continue
        verified_recently = p.last_verified_at and now - p.last_verified_at <= 365 * DAY
        if params.get("include_stale") != "true" and not verified_recently:
            continue
        if params.get("accepting_new_patients", "true") == "true" and not p.accepting_new_patients:
            continue
        if params.get("accepts_coordinated_care") == "true" and not p.accepts_coordinated_care:
            continue
        if "role" in params and p.role != params["role"]:
            continue
        if "provider_type" in params and p.provider_type != params["provider_type"]:
            continue
        if "gender" in params and gender_category(p.gender) != params["gender"]:
            continue
        if "language" in params and params["language"] not in p.languages:
            continue
        if "age_group" in params and params["age_group"] not in p.age_groups:
            continue
        if modalities and not set(modalities) & set(p.modalities):
            continue
        if concerns and not (set(concerns) & set(p.concerns) or suited & set(p.modalities)):
            continue
        insurance = as_list(params.get("insurance"))
        if insurance and not set(insurance) & set(p.insurance):
            continue
        if "max_fee" in params:
            # The whole fee range within the budget; asking for a sliding scale, its floor.
            budget, highest = int(params["max_fee"]), max(
                fee for fee in (p.fee_min, p.fee_max, -1) if fee is not None)
            floor_fits = (params.get("sliding_scale") == "true" and p.sliding_scale
                          and p.fee_min is not None and p.fee_min <= budget)
            if p.fee_min is None or not (highest <= budget or floor_fits):
                continue
        specialties = as_list(params.get("specialty"))
        if specialties and not set(specialties) & set(p.specialties):
            continue
        if params.get("sliding_scale") == "true" and not p.sliding_scale:
            continue
        if point is not None or state:
            reach = False
            if point is not None and person_mode and p.in_person and p.latitude is not None:
                reach = geodesic(point, (p.latitude, p.longitude)).miles <= radius
            if point is None and state and person_mode and p.in_person:
                reach = p.state == state
            if state and tele_mode and p.telehealth and state in p.licensed_states:
                reach = True
            if not reach:
                continue
        found.add(p.id)
    return found


def all_results(client, params):
    """Every item of every page, and the first page's body."""
    items, page, first = [], 1, None
    while True:
        response = client.get(URL, query_string={**params, "per_page": 100, "page": page})
        assert response.status_code == 200, response.json
        body = response.json
        first = first or body
        items.extend(body["items"])
        if page * 100 >= body["total"]:
            return items, first
        page += 1


def recount(providers, ids):
    chosen = [p for p in providers if p.id in ids]
    telehealth = sum(p.telehealth for p in chosen)
    return {
        "modality": dict(Counter(m for p in chosen for m in p.modalities)),
        "provider_type": dict(Counter(p.provider_type for p in chosen)),
        "telehealth": {"true": telehealth, "false": len(chosen) - telehealth},
        "insurance": dict(Counter(i for p in chosen for i in p.insurance)),
        "language": dict(Counter(code for p in chosen for code in p.languages)),
    }


CASES = [
    {},
    {"zip": "10001"},
    {"zip": "10001", "radius_miles": "100", "in_person": "true"},
    {"state": "CA", "telehealth": "true"},
    {"zip": "60601", "max_fee": "150", "insurance": ["aetna", "bcbs"]},
    {"zip": "10001", "modality": ["CBT", "DBT"], "accepting_new_patients": "false"},
    {"concern": "ocd", "state": "TX"},
    {"concern": ["ptsd", "trauma"], "modality": "EMDR"},
    {"role": "prescriber", "language": "es"},
    {"provider_type": "psychiatrist", "age_group": "adolescent", "include_stale": "true"},
    {"lat": "34.05", "lon": "-118.24", "radius_miles": "60", "sliding_scale": "true"},
    {"gender": "male", "accepts_coordinated_care": "true", "state": "NY"},
    {"state": "FL"},
    {"zip": "02115", "telehealth": "true", "in_person": "true", "radius_miles": "250"},
    {"zip": "77002", "telehealth": "false"},
    {"specialty": ["mat", "veterans"], "state": "CA"},
    {"zip": "10001", "max_fee": "180", "sliding_scale": "true", "radius_miles": "100"},
    {"state": "NY", "max_fee": "150"},
]


@pytest.mark.parametrize("params", CASES, ids=[str(i) for i in range(len(CASES))])
def test_results_and_facets_equal_an_independent_recount(directory, params):
    app, providers = directory
    client = app.test_client()
    items, first = all_results(client, params)
    expected = oracle(providers, params, dt.datetime.now(dt.UTC))
    assert {item["id"] for item in items} == expected
    assert first["total"] == len(expected) == len(items)
    assert first["facets"] == recount(providers, expected)
    point = None
    if "zip" in params:
        place = lookup_zip(params["zip"])
        point = (place.latitude, place.longitude)
    elif "lat" in params:
        point = (float(params["lat"]), float(params["lon"]))
    for item in items:
        if point is None:
            assert item["distance_miles"] is None
        elif item["latitude"] is not None:
            exact = geodesic(point, (item["latitude"], item["longitude"])).miles
            assert item["distance_miles"] == pytest.approx(exact, abs=0.01)
            if "in_person" in item["reach"]:
                assert exact <= float(params.get("radius_miles", 25)) and item["in_person"]
        if "telehealth" in item["reach"]:
            assert item["telehealth"]
        assert item["reasons"], item


def test_fee_and_radius_limits_are_inclusive(directory):
    app, providers = directory
    client = app.test_client()
    now = dt.datetime.now(dt.UTC)
    target = next(p for p in providers if p.active and p.accepting_new_patients and p.in_person
                  and p.fee_min and p.fee_max > p.fee_min and not p.sliding_scale
                  and now - p.last_verified_at < 300 * DAY)
    ids = {item["id"] for item in all_results(client, {
        "max_fee": str(target.fee_max), "state": target.state})[0]}
    assert target.id in ids
    # Only the lowest fee within the budget is not enough (the budget rule is the whole range).
    ids = {item["id"] for item in all_results(client, {
        "max_fee": str(target.fee_max - 1), "state": target.state})[0]}
    assert target.id not in ids


def test_stale_listings_rank_after_verified_ones(directory):
    app, providers = directory
    items, _ = all_results(app.test_client(), {"state": "CA"})
    flags = [item["stale"] for item in items]
    assert flags == sorted(flags) and True in flags and False in flags
    now = dt.datetime.now(dt.UTC)
    for item in items:
        verified = dt.datetime.fromisoformat(item["last_verified_at"])
        assert item["stale"] == (now - verified > 90 * DAY)


@pytest.mark.parametrize("sort, key", [
    ("distance", lambda item: item["distance_miles"]),
    ("fee", lambda item: item["fee_min"]),
    ("availability", lambda item: item["wait_days"]),
])
def test_sorts_order_each_freshness_tier(directory, sort, key):
    app, _ = directory
    items, _ = all_results(app.test_client(), {"zip": "10001", "radius_miles": "250",
                                               "in_person": "true", "sort": sort})
    assert len(items) > 20
    for stale in (False, True):
        values = [key(item) for item in items if item["stale"] is stale and key(item) is not None]
        assert all(a <= b + 0.01 for a, b in zip(values, values[1:], strict=False)), sort


def test_hidden_after_a_year_unless_asked(directory):
    app, providers = directory
    now = dt.datetime.now(dt.UTC)
    ancient = {p.id for p in providers if p.active and now - p.last_verified_at > 365 * DAY}
    assert ancient
    client = app.test_client()
    shown, _ = all_results(client, {"accepting_new_patients": "false"})
    assert not ancient & {item["id"] for item in shown}
    everything, _ = all_results(client, {"accepting_new_patients": "false",
                                         "include_stale": "true"})
    assert ancient <= {item["id"] for item in everything}


def test_concern_ranks_suited_modalities_first_and_says_which(directory):
    app, _ = directory
    body = app.test_client().get(URL, query_string={"concern": "ocd", "state": "TX",
                                                    "per_page": 5}).json
    top = body["items"][0]
    assert set(top["matched_modalities"]) <= {"ERP", "CBT"} and top["matched_modalities"]
    assert any("suited to OCD" in reason for reason in top["reasons"])


def test_free_text_names_typos_and_did_you_mean(directory):
    app, providers = directory
    client = app.test_client()
    target = next(p for p in providers if p.active and p.accepting_new_patients
                  and p.last_verified_at > dt.datetime.now(dt.UTC) - 300 * DAY)
    exact = client.get(URL, query_string={"q": f"{target.first_name} {target.last_name}",
                                          "per_page": 100}).json
    assert exact["total"] <= 100  # the whole answer is on this page...
    assert target.id in {item["id"] for item in exact["items"]}  # ...and the target is in it
    assert all(item["first_name"] == target.first_name and item["last_name"] == target.last_name
               for item in exact["items"])
    typo = target.last_name[:-1] + ("x" if target.last_name[-1] != "x" else "y")
    fuzzy = client.get(URL, query_string={"q": typo}).json
    assert target.last_name in {item["last_name"] for item in fuzzy["items"]}
    nothing = client.get(URL, query_string={"q": f"{typo} qqqqqqq"}).json
    assert nothing["total"] == 0 and nothing["did_you_mean"]
    assert target.last_name.lower() in nothing["did_you_mean"].lower()
    followed = client.get(URL, query_string={"q": nothing["did_you_mean"]}).json
    assert followed["total"] > 0  # "did you mean" never leads to nothing


def test_free_text_vocabulary_acts_as_filters(directory):
    app, providers = directory
    body = app.test_client().get(URL, query_string={
        "q": "spanish speaking EMDR therapist for trauma", "state": "CA"}).json
    assert body["interpreted"]["terms"] == {"language": ["es"], "modality": ["EMDR"],
                                            "role": ["therapist"], "concern": ["trauma"]}
    expected = oracle(providers, {"language": "es", "modality": "EMDR", "role": "therapist",
                                  "concern": "trauma", "state": "CA"},
                      dt.datetime.now(dt.UTC))
    assert body["total"] == len(expected)


@pytest.mark.parametrize("text, crisis", [
    ("I want to kill myself", True), ("thinking about suicide", True),
    ("self-harm", True), ("took an overdose", True), ("I don't want to live", True),
    ("anxiety therapist", False), ("Dr. Harmon", False), ("suitable CBT", False),
])
def test_crisis_text_brings_the_988_notice_first(directory, text, crisis):
    app, _ = directory
    response = app.test_client().get(URL, query_string={"q": text, "zip": "10001"})
    assert response.status_code == 200
    body = response.json
    assert ("crisis" in body) is crisis
    if crisis:
        assert body["crisis"]["message"] == CRISIS_MESSAGE
        assert response.get_data(as_text=True).index('"crisis"') < \
            response.get_data(as_text=True).index('"items"')
        assert body["did_you_mean"] is None


@pytest.mark.parametrize("query", [
    {"radius_miles": "0.5", "zip": "10001"}, {"radius_miles": "251", "zip": "10001"},
    {"nonsense": "1"}, {"sort": "random"}, {"sort": "distance"}, {"per_page": "101"},
    {"page": "0"}, {"lat": "40"}, {"lat": "40", "lon": "-70", "zip": "10001"},
    {"telehealth": "true"}, {"in_person": "true", "state": "NY"},
    {"telehealth": "false", "in_person": "false", "zip": "10001"},
    {"modality": "reiki"}, {"zip": "00000"}, {"max_fee": "-1"}, {"lat": "nan", "lon": "1"},
    {"q": "x" * 201}, {"page": "200", "per_page": "100"}, {"gender": "robot"},
    {"q": "\x00"}, {"q": "\u202e"},  # refused by request hygiene, for a named reason
])
def test_bad_parameters_are_422(directory, query):
    app, _ = directory
    assert_error_shape(app.test_client().get(URL, query_string=query), 422)


def test_items_are_the_listing_as_the_api_shows_it_plus_why(directory):
    from referral.schemas.listings import ProviderSchema
    from referral.schemas.search import SearchItemSchema

    app, _ = directory
    client = app.test_client()
    for _ in range(2):  # the second answer comes from the per-process listing cache
        body = client.get(URL, query_string={"zip": "10001", "per_page": 5}).json
        with app.test_request_context():
            for item in body["items"]:
                assert set(item) == set(SearchItemSchema().fields)
                fresh = json_roundtrip(ProviderSchema().dump(db.session.get(Provider, item["id"])))
                extras = {"distance_miles", "reasons", "matched_modalities", "reach"}
                assert {k: v for k, v in item.items() if k not in extras} == fresh


def json_roundtrip(value):
    import json
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("text", [
    "\U0001f642", "a" * 200, "OR AND NOT", "*", "?", "'\"", "\u00df", "\u540d\u524d",
    "name:smith", "((((", "-", "smith~2", "%", "o'brien o'connor", "\u200b", "a\u200db",
])
def test_odd_free_text_never_fails(directory, text):
    app, _ = directory
    response = app.test_client().get(URL, query_string={"q": text, "zip": "10001"})
    assert response.status_code == 200, response.json


@pytest.mark.parametrize("text", ["\x00", "\u202e", "a\x1fb"])
def test_free_text_with_controls_is_refused_by_the_cleaning_rule(directory, text):
    app, _ = directory
    response = app.test_client().get(URL, query_string={"q": text, "zip": "10001"})
    assert set(assert_error_shape(response, 422)["errors"]["query"]) == {"q"}


def test_search_is_documented(directory):
    app, _ = directory
    spec = app.test_client().get("/api/v1/openapi.json").json
    parameters = {p["name"] for p in spec["paths"]["/api/v1/providers/search"]["get"]["parameters"]}
    assert {"q", "zip", "radius_miles", "telehealth", "max_fee", "sort", "concern"} <= parameters


@pytest.mark.parametrize("typed", ["O'Brien", "o'brien", "O\u2019Brien", "O'Brien's",
                                   "Dr. O'Brien"])
def test_a_name_with_an_apostrophe_is_found_as_patients_type_it(client, make_clinic, create,
                                                                  typed):
    """The apostrophe in a name is kept (only possessives are dropped), so the words match
    the index's ("o", "brien"); before, "O'Brien" became "obrien" and found nobody."""
    _, token = make_clinic()
    wanted = create(token, first_name="Siobhan", last_name="O'Brien")
    create(token, first_name="Maya", last_name="Brienne")
    found = client.get("/api/v1/providers/search", query_string={"q": typed, "state": "MA",
                                                                  "telehealth": "true"})
    assert found.status_code == 200, found.json
    assert [item["id"] for item in found.json["items"]][:1] == [wanted["id"]], typed
