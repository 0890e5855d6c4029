"""Unit tests of patient search through the in-memory search service (no database)."""

from __future__ import annotations

import dataclasses
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


# -- issue 15: how people write, no dead ends, honest facts -------------------------------


@pytest.mark.parametrize("query, terms", [
    ("spanish speaking EMDR therapist for trauma",
     {"language": ["es"], "modality": ["EMDR"], "role": ["therapist"], "concern": ["trauma"]}),
    ("spanish-speaking therapist", {"language": ["es"], "role": ["therapist"]}),
    ("therapist who speaks spanish", {"role": ["therapist"], "language": ["es"]}),
    ("female therapist", {"gender": ["female"], "role": ["therapist"]}),
    ("LGBTQ affirming", {"specialty": ["lgbtq_affirming"]}),
    ("suboxone", {"specialty": ["mat"]}),
])
def test_ordinary_wording_is_understood_and_finds_providers(rendered, query, terms):
    understood = understand_query(query)
    assert understood.terms == terms and understood.text_words == []
    fits = rendered(last_name="Fits", languages=["en", "es"], modalities=["EMDR"],
                    concerns=["trauma"], gender="woman", specialties=["lgbtq_affirming", "mat"]
                    if "suboxone" not in query else ["mat"])
    if "suboxone" in query:
        fits = rendered(last_name="Fits", provider_type="psychiatrist",
                        taxonomy_codes=["2084P0800X"], modalities=[], specialties=["mat"])
    other = rendered(last_name="Other", languages=["en"], modalities=["CBT"], gender="man",
                     concerns=["depression"])
    answer = find(InMemorySearchService([fits, other]), q=query)
    assert ids(answer) == [fits["id"]]


def test_leftover_words_only_rank_when_the_query_said_something_understood(rendered):
    spanish = rendered(last_name="Diaz", languages=["es"], bio="Works with families.")
    answer = find(InMemorySearchService([spanish]), q="spanish therapist compassionate")
    assert ids(answer) == [spanish["id"]]
    assert answer["interpreted"]["unmatched"] == ["compassionate"]


def test_crisis_wording_for_passive_ideation_brings_the_notice(rendered):
    answer = find(InMemorySearchService([rendered()]), q="i dont want to be here anymore")
    assert next(iter(answer)) == "crisis"


def test_no_results_suggest_relaxations_with_their_counts(rendered):
    far = rendered(last_name="Farr", zip="01201", address_line1="1 Main St", telehealth=False,
                   insurance=["cigna"], fee_min=100, fee_max=100, sliding_scale=False)
    service = InMemorySearchService([far])
    answer = find(service, zip="02115", in_person="true", insurance=["aetna"])
    assert answer["total"] == 0
    offered = {r["label"]: r["total"] for r in answer["relaxations"]}
    # Pittsfield is ~115 miles from Boston: 250 miles and no insurance filter find it, but
    # each alone does not; so nothing is offered that leads nowhere.
    assert all(total > 0 for total in offered.values())
    wider = find(service, zip="02115", in_person="true", radius_miles="250")
    assert wider["total"] == 1
    answer = find(service, zip="02115", in_person="true", radius_miles="250",
                  insurance=["aetna"])
    assert {r["label"]: r["total"] for r in answer["relaxations"]} == {
        "Any insurance": 1, "Without \u201cAetna\u201d": 1}
    change = next(r["change"] for r in answer["relaxations"] if r["label"] == "Any insurance")
    assert change == {"insurance": None}


def test_a_page_past_the_last_shows_the_last_page(rendered):
    service = InMemorySearchService([rendered(last_name=f"P{i}") for i in range(5)])
    answer = find(service, per_page="2", page="999")
    assert answer["page"] == 3 and len(answer["items"]) == 1 and answer["total"] == 5


def test_a_budget_fits_only_the_whole_fee_range(rendered):
    wide = rendered(last_name="Wide", fee_min=40, fee_max=220, sliding_scale=False)
    wide_sliding = rendered(last_name="Slide", fee_min=40, fee_max=220, sliding_scale=True)
    within = rendered(last_name="Within", fee_min=80, fee_max=120, sliding_scale=False)
    service = InMemorySearchService([wide, wide_sliding, within])
    assert set(ids(find(service, max_fee="120"))) == {within["id"]}
    assert set(ids(find(service, max_fee="120", sliding_scale="true"))) == {wide_sliding["id"]}
    item = find(service, max_fee="120")["items"][0]
    assert "Fees $80\u2013$120, all within your $120" in item["reasons"]


def test_reasons_name_approaches_not_codes(rendered):
    listing = rendered(modalities=["PSYCHODYNAMIC", "MI"], concerns=["grief"])
    answer = find(InMemorySearchService([listing]), concern=["grief"])
    assert "Offers Psychodynamic therapy, suited to grief" in answer["items"][0]["reasons"]


def test_chips_say_what_was_understood_and_how_to_remove_it():
    understood = understand_query("spanish speaking EMDR therapist for trauma")
    assert understood.without("language", "es") == "emdr therapist for trauma"
    assert understood.without("concern", "trauma") == "spanish speaking emdr therapist for"


def test_shared_memo_and_early_stop_give_the_answer_counted_one_by_one():
    """Relaxation counts share one memo and stop after the offered ones: same answer as
    counting every relaxation with a full search of its own."""
    import random

    from referral.search import MAX_RELAXATIONS, relaxations_for
    from tests.conftest import generated_directory

    class Plain(InMemorySearchService):
        def find(self, session, criteria, text=None, *, facets=True, memo=None):
            return super().find(session, criteria, text, facets=facets)

        def count(self, session, criteria, text=None, *, memo=None):
            return self.find(session, criteria, text, facets=False).total

    listings = generated_directory(600, seed=3)
    fast, plain = InMemorySearchService(listings), Plain(listings)
    rng = random.Random(9)
    now = dt.datetime.now(dt.UTC)
    empty = 0
    for _ in range(25):
        params = load({
            "zip": rng.choice(listings)["zip"], "radius_miles": rng.choice(("10", "50")),
            "modality": rng.sample(["CBT", "DBT", "EMDR", "ACT", "IPT"], 2),
            "concern": [rng.choice(["anxiety", "depression", "ocd", "ptsd"])],
            "insurance": [rng.choice(["aetna", "cigna", "medicaid"])],
            "language": rng.choice(["en", "es"]), "gender": rng.choice(["female", "male"]),
            "max_fee": rng.choice(["150", "250"]), "sliding_scale": rng.choice(["true", "false"]),
            "accepts_coordinated_care": "true", "q": rng.choice(["", "", "", "maya"])})
        answer = search_providers(fast, None, params, dump_listing=None, now=now)
        assert answer == search_providers(plain, None, params, dump_listing=None, now=now)
        if answer["total"] == 0:
            empty += 1
            understood = understand_query(params.get("q"), plain.knows_word)

            def total(changed):
                found = understand_query(changed.get("q"), plain.knows_word)
                criteria, _ = build_criteria(changed, found, now, 90, 365)
                return plain.find(None, criteria, " ".join(found.text_words) or None).total
            expected = [(option["label"], count) for option in relaxations_for(params, understood)
                        if (count := total(option["params"]))][:MAX_RELAXATIONS]
            assert [(r["label"], r["total"]) for r in answer["relaxations"]] == expected
    assert empty >= 10


def test_only_the_first_relaxations_that_find_someone_are_counted_and_offered():
    from referral.search import MAX_RELAXATIONS, relaxations_for
    from tests.conftest import generated_directory

    class FindsNothing(InMemorySearchService):
        """The answer itself is empty; relaxations are counted for real."""

        counted = 0

        def find(self, session, criteria, text=None, *, facets=True, memo=None):
            found = super().find(session, criteria, text, facets=facets, memo=memo)
            return dataclasses.replace(found, ids=[], versions=[], total=0)

        def count(self, session, criteria, text=None, *, memo=None):
            self.counted += 1
            return super().count(session, criteria, text, memo=memo)

    service = FindsNothing(generated_directory(400, seed=5))
    params = load({"state": "CA", "insurance": ["aetna"], "max_fee": "250", "language": "en",
                   "gender": "female", "concern": ["anxiety"], "accepts_coordinated_care": "true"})
    answer = search_providers(service, None, params, dump_listing=None)
    options = relaxations_for(params, understand_query(None))
    plain = InMemorySearchService(generated_directory(400, seed=5))
    now = dt.datetime.now(dt.UTC)
    totals = [plain.find(None, build_criteria(o["params"], understand_query(None), now, 90,
                                              365)[0]).total for o in options]
    assert sum(1 for total in totals if total) > MAX_RELAXATIONS
    expected = [(o["label"], total) for o, total in zip(options, totals, strict=True)
                if total][:MAX_RELAXATIONS]
    assert [(r["label"], r["total"]) for r in answer["relaxations"]] == expected
    assert service.counted < len(options)  # counting stopped once enough were found
