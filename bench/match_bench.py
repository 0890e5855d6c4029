"""Matching benchmark: therapist + prescriber pairs and the prescriber finder, in process.

Run from the project root::

    .venv/bin/python -m bench.match_bench --count 1000000 --queries 300

Patient needs: a real ZIP (population-weighted), one concern, and in some queries
insurance, an age group, telehealth only, or a combined fee limit. Each answer is
the top 10 diverse pairs, rendered (listings from the database or the cache).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random

from bench.common import bench_app
from bench.search_bench import measure


def patient_needs(count: int, seed: int = 5) -> list[dict]:
    """Varied, realistic needs for a pair."""
    from seeds.generator import CONCERN_WEIGHTS, PAYER_WEIGHTS, weighted_zips

    rng = random.Random(seed)
    places, cumulative = weighted_zips()
    concerns, weights = list(CONCERN_WEIGHTS), list(CONCERN_WEIGHTS.values())
    needs = []
    for _ in range(count):
        place = rng.choices(places, cum_weights=cumulative)[0]
        need = {"zip": place.zip, "concern": [rng.choices(concerns, weights=weights)[0]]}
        if rng.random() < 0.5:
            need["insurance"] = [rng.choices(list(PAYER_WEIGHTS),
                                             weights=list(PAYER_WEIGHTS.values()))[0]]
        if rng.random() < 0.3:
            need["age_group"] = rng.choice(("adolescent", "adult", "older_adult"))
        if rng.random() < 0.2:
            need["telehealth"] = True
        if rng.random() < 0.3:
            need["max_combined_fee"] = rng.choice((300, 400, 500))
        needs.append(need)
    return needs


def main() -> None:
    parser = argparse.ArgumentParser(description="matching benchmark")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()

    app = bench_app(args.count)
    from referral.extensions import db
    from referral.matching import match_pairs, prescribers_for_therapist
    from referral.models import Provider
    from referral.schemas.listings import listing_dump
    from referral.schemas.matching import MatchQuerySchema, PrescriberFinderQuerySchema
    from referral.services import search_service

    service = search_service(app)
    state = service.state
    dump = listing_dump
    needs = [MatchQuerySchema().load(n) for n in patient_needs(args.queries)]
    now = dt.datetime.now(dt.UTC)
    report = {"count": args.count, "queries": args.queries}
    with app.app_context():
        with db.engine.connect() as connection:
            state.refresh_table(connection)

        def match(params):
            match_pairs(service, db.session, params, dump, now=now)
            db.session.rollback()

        report["match"] = measure(match, needs)
        answers = [match_pairs(service, db.session, p, dump, now=now) for p in needs[:50]]
        report["match_mean_pairs"] = sum(len(a["pairs"]) for a in answers) / len(answers)
        report["match_mean_candidates"] = round(sum(
            a["therapist_candidates"] + a["prescriber_candidates"] for a in answers)
            / len(answers))
        rng = random.Random(9)
        top = db.session.scalar(db.select(db.func.max(Provider.id)))
        therapists = []
        while len(therapists) < args.queries:
            provider = db.session.get(Provider, rng.randint(1, top))
            if provider is not None and provider.role == "therapist":
                therapists.append(provider.id)
        finder_params = [PrescriberFinderQuerySchema().load({"zip": n["zip"]}) for n in needs]

        def finder(item):
            therapist_id, params = item
            prescribers_for_therapist(service, db.session, therapist_id, params, dump, now=now)
            db.session.rollback()

        report["prescriber_finder"] = measure(
            finder, list(zip(therapists, finder_params, strict=True)))
    print(json.dumps(report, indent=1))



if __name__ == "__main__":
    main()
