"""Unit tests of patient search through the in-memory search service (no database)."""

from __future__ import annotations

import datetime as dt

import pytest

from referral.limits import DEFAULT_RADIUS_MILES
from referral.schemas.search import SearchQuerySchema
from referral.search import build_criteria, search_providers, understand_query
from referral.search_service import InMemorySearchService

load = SearchQuerySchema().load


def find(service, **params):
    return search_providers(service, None, load(params), dump_listing=None)


@pytest.fixture
def boston(rendered):
    """Three listings around Boston and one in New York licensed in MA by telehealth."""
    return {
        "near": rendered(last_name="Near", zip="02115", modalities=["EMDR"], concerns=["ptsd"]),
        "far": rendered(last_name="Farr", zip="01201", address_line1="1 Main St",
                        modalities=["CBT"]),
        "stale": rendered(last_name="Olden", zip="02116", modalities=["EMDR"],
                          verified_days_ago=200),
        "remote": rendered(last_name="Remote", state="NY", zip="10001", in_person=False,
                           telehealth=True, licensed_states=["NY", "MA"], modalities=["CPT"],
                           address_line1=None),
    }


def ids(answer):
    return [item["id"] for item in answer["items"]]


def test_in_person_within_the_radius_only(boston):
    service = InMemorySearchService(boston.values())
    answer = find(service, zip="02115", in_person="true")
    assert set(ids(answer)) == {boston["near"]["id"], boston["stale"]["id"]}
    assert all(item["reach"] == ["in_person"] for item in answer["items"])


def test_telehealth_reaches_across_state_lines_only_when_licensed(boston, rendered):
    unlicensed = rendered(last_name="Elsewhere", state="NY", zip="10001", in_person=False,
                          telehealth=True, licensed_states=["NY"], address_line1=None)
    service = InMemorySearchService([*boston.values(), unlicensed])
    answer = find(service, state="MA", telehealth="true")
    assert boston["remote"]["id"] in ids(answer)
    assert unlicensed["id"] not in ids(answer)
    remote = next(i for i in answer["items"] if i["id"] == boston["remote"]["id"])
    assert remote["reach"] == ["telehealth"] and "Telehealth, licensed in MA" in remote["reasons"]


def test_stale_listings_rank_last_and_say_so(boston):
    service = InMemorySearchService(boston.values())
    answer = find(service, zip="02115", in_person="true", sort="distance")
    assert ids(answer)[-1] == boston["stale"]["id"]
    assert [item["stale"] for item in answer["items"]] == [False, True]


def test_a_concern_ranks_suited_modalities_first(boston):
    service = InMemorySearchService(boston.values())
    answer = find(service, state="MA", concern=["ptsd"])
    assert ids(answer)[0] == boston["near"]["id"]
    assert answer["items"][0]["matched_modalities"] == ["EMDR"]


def test_free_text_words_narrow_to_matching_listings(boston):
    service = InMemorySearchService(boston.values())
    answer = find(service, q="farr")
    assert ids(answer) == [boston["far"]["id"]]
    assert answer["interpreted"]["text"] == "farr"


def test_a_crisis_brings_the_notice_first(boston):
    answer = find(InMemorySearchService(boston.values()), q="i want to kill myself")
    assert next(iter(answer)) == "crisis" and answer["crisis"]["call"] == "988"


def test_free_text_vocabulary_becomes_filters():
    understood = understand_query("spanish EMDR therapist for trauma")
    assert understood.terms == {"language": ["es"], "modality": ["EMDR"], "role": ["therapist"],
                                "concern": ["trauma"]}
    assert understood.text_words == []


def test_criteria_from_a_zip_take_its_state_and_default_radius():
    now = dt.datetime.now(dt.UTC)
    criteria, location = build_criteria(load({"zip": "02115"}), understand_query(""), now, 90, 365)
    assert criteria.state == "MA" and location["state"] == "MA"
    assert criteria.radius_miles == DEFAULT_RADIUS_MILES
    assert criteria.telehealth and criteria.in_person
