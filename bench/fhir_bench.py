"""FHIR Plan-Net API benchmark: the PractitionerRole search against the JSON search, and
paging to the end of a ~1,000-result search while listings are being changed.

Run from the project root, e.g.::

    .venv/bin/python -m bench.fhir_bench --count 100000
    .venv/bin/python -m bench.fhir_bench --count 100000 --database postgres

Both variants are measured in the same run, in process through the Flask test client
(routing, parameter parsing, database, rendering and JSON, no network), on the same
corpus, query by query in alternating order:

- *fhir*: ``GET /fhir/PractitionerRole?location.address-postalcode=<zip>&specialty=
  <NUCC>|<code>&_include=PractitionerRole:practitioner&_include=PractitionerRole:location``
  (20 per page, with the total);
- *json*: ``GET /api/v1/providers/search?zip=<zip>&provider_type=<type of the code>&
  in_person=true&radius_miles=1&accepting_new_patients=false`` (the closest JSON
  criteria: the JSON search has no exact-ZIP or taxonomy filter, so it searches 1 mile
  around the ZIP's centroid for the provider type; 20 per page, with total and facets).

The paging part finds the state whose public in-person listings number closest to
1,000, pages through ``PractitionerRole?location.address-state=<state>&_count=100``
while a writer thread verifies, edits, deactivates and adds listings of that state, and
checks that no listing came twice and none that matched throughout was missed; then it
puts every changed listing back. For comparison it pages the JSON search
(``state=<state>``, page by page) under the same writes and counts its repeats and gaps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import threading
import time
from urllib.parse import urlencode, urlsplit

from bench.common import bench_app, data_dir, summary

NUCC = "http://nucc.org/provider-taxonomy"


def sample_queries(app, count: int, seed: int = 5) -> list[tuple[str, str, str]]:
    """``(zip, taxonomy code, provider type)`` of ``count`` random public in-person listings."""
    from sqlalchemy import select

    from referral.extensions import db
    from referral.fhir.visibility import public_listing
    from referral.models import Provider

    with app.app_context():
        from referral.fhir.visibility import Snapshot
        from referral.models import utcnow

        snapshot = Snapshot(utcnow(), app.config["HIDDEN_AFTER_DAYS"],
                            app.config["STALE_AFTER_DAYS"], "http://localhost/fhir")
        ids = db.session.scalars(select(Provider.id).where(
            public_listing(snapshot), Provider.in_person.is_(True),
            Provider.zip.is_not(None))).all()
        chosen = random.Random(seed).sample(ids, count)
        rows = db.session.execute(select(Provider.zip, Provider.taxonomy_codes,
                                         Provider.provider_type)
                                  .where(Provider.id.in_(chosen))).all()
    return [(row.zip, row.taxonomy_codes[0], row.provider_type) for row in rows]


def fhir_path(zip_code: str, code: str, includes: bool = True) -> str:
    """The FHIR PractitionerRole search of one query (with the two includes by default)."""
    query = [("location.address-postalcode", zip_code), ("specialty", f"{NUCC}|{code}"),
             ("_count", "20")]
    if includes:
        query += [("_include", "PractitionerRole:practitioner"),
                  ("_include", "PractitionerRole:location")]
    return "/fhir/PractitionerRole?" + urlencode(query)


def json_path(zip_code: str, provider_type: str) -> str:
    """The closest JSON search for the same criteria."""
    return "/api/v1/providers/search?" + urlencode({
        "zip": zip_code, "provider_type": provider_type, "in_person": "true",
        "radius_miles": "1", "accepting_new_patients": "false", "per_page": "20"})


def compare(app, queries) -> dict:
    """Latency of the FHIR and JSON searches for the same queries, interleaved."""
    client = app.test_client()
    variants = {
        "fhir": lambda q: fhir_path(q[0], q[1]),
        "fhir_without_includes": lambda q: fhir_path(q[0], q[1], includes=False),
        "json": lambda q: json_path(q[0], q[2]),
    }
    seconds = {name: [] for name in variants}
    totals = {name: [] for name in variants}
    sizes = {name: [] for name in variants}
    for query in queries[:20]:  # warm-up: table load, caches, connections
        for path in variants.values():
            assert client.get(path(query)).status_code == 200
    for index, query in enumerate(queries):
        order = list(variants.items())
        if index % 2:
            order.reverse()
        for name, path in order:
            started = time.perf_counter()
            response = client.get(path(query))
            seconds[name].append(time.perf_counter() - started)
            assert response.status_code == 200, response.get_data(as_text=True)[:300]
            body = json.loads(response.get_data())
            totals[name].append(body["total"])
            sizes[name].append(len(response.get_data()))
    found = {name: {**summary(values), "mean_total": round(statistics.mean(totals[name]), 1),
                    "mean_kb": round(statistics.mean(sizes[name]) / 1024, 1)}
             for name, values in seconds.items()}
    found["p95_ratio_fhir_to_json"] = round(found["fhir"]["p95"] / found["json"]["p95"], 2)
    found["p50_ratio_fhir_to_json"] = round(found["fhir"]["p50"] / found["json"]["p50"], 2)
    return found


# ---------------------------------------------------------------------------
# Paging while listings change


def state_near_1000(app) -> tuple[str, int]:
    """The state whose public in-person listings number closest to 1,000."""
    from sqlalchemy import func, select

    from referral.extensions import db
    from referral.fhir.visibility import Snapshot, listing_has_location, public_listing
    from referral.models import Provider, utcnow

    with app.app_context():
        snapshot = Snapshot(utcnow(), app.config["HIDDEN_AFTER_DAYS"],
                            app.config["STALE_AFTER_DAYS"], "")
        counts = db.session.execute(select(Provider.state, func.count()).where(
            public_listing(snapshot), listing_has_location()).group_by(Provider.state)).all()
    return min(counts, key=lambda row: abs(row[1] - 1000))


class Writer(threading.Thread):
    """Changes listings of one state until stopped: verifies and edits most, deactivates a
    few; ``restore()`` puts every changed listing back as it was, so the shared benchmark
    database (and the JSON search index that follows it) is left unchanged."""

    def __init__(self, app, ids: list[int], seed: int = 9):
        super().__init__(daemon=True)
        self.app, self.ids, self.rng = app, ids, random.Random(seed)
        self.stop = threading.Event()
        self.deactivated: set[int] = set()
        self.originals: dict[int, tuple] = {}
        self.commits = 0

    def run(self):
        """Change random listings, one commit each, until ``stop`` is set."""
        from referral.extensions import db
        from referral.models import Provider, utcnow

        with self.app.app_context():
            while not self.stop.is_set():
                provider = db.session.get(Provider, self.rng.choice(self.ids))
                self.originals.setdefault(provider.id, (
                    provider.active, provider.last_verified_at, provider.wait_days,
                    provider.updated_at))
                if self.rng.random() < 0.03 and provider.active:
                    provider.active = False
                    self.deactivated.add(provider.id)
                else:
                    provider.last_verified_at = utcnow()
                    provider.wait_days = self.rng.randint(0, 90)
                db.session.commit()
                self.commits += 1
                time.sleep(0.001)
            db.session.remove()

    def restore(self) -> None:
        """Put every listing this writer changed back as it was."""
        from referral.extensions import db
        from referral.models import Provider

        with self.app.app_context():
            for provider_id, (active, verified, wait, updated) in self.originals.items():
                provider = db.session.get(Provider, provider_id)
                provider.active, provider.last_verified_at = active, verified
                provider.wait_days, provider.updated_at = wait, updated
            db.session.commit()
            db.session.remove()


def public_ids_in_state(app, state: str) -> set[int]:
    """Ids of the public in-person listings of ``state`` now (what the paged search matches)."""
    from sqlalchemy import select

    from referral.extensions import db
    from referral.fhir.visibility import Snapshot, listing_has_location, public_listing
    from referral.models import Provider, utcnow

    with app.app_context():
        snapshot = Snapshot(utcnow(), app.config["HIDDEN_AFTER_DAYS"],
                            app.config["STALE_AFTER_DAYS"], "")
        return set(db.session.scalars(select(Provider.id).where(
            public_listing(snapshot), listing_has_location(), Provider.state == state)))


def page_fhir_while_writing(app, state: str, runs: int) -> dict:
    """Page the FHIR search of ``state`` to its end ``runs`` times while a writer changes
    its listings; count repeats, gaps and foreign results."""
    client = app.test_client()
    results = []
    for run in range(runs):
        at_start = public_ids_in_state(app, state)
        writer = Writer(app, sorted(at_start), seed=run)
        seen, pages = [], 0
        path = "/fhir/PractitionerRole?" + urlencode({"location.address-state": state,
                                                      "_count": "100"})
        writer.start()
        started = time.perf_counter()
        try:
            while path:
                response = client.get(path)
                assert response.status_code == 200, response.get_data(as_text=True)[:300]
                bundle = json.loads(response.get_data())
                seen += [int(e["resource"]["id"]) for e in bundle.get("entry", [])
                         if e["search"]["mode"] == "match"]
                pages += 1
                following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
                path = "{0.path}?{0.query}".format(urlsplit(following[0])) if following else None
                time.sleep(0.005)
        finally:
            elapsed = time.perf_counter() - started
            writer.stop.set()
            writer.join()
            writer.restore()
        expected = at_start - writer.deactivated
        results.append({
            "results_at_start": len(at_start), "returned": len(seen), "pages": pages,
            "seconds": round(elapsed, 2), "writer_commits": writer.commits,
            "listings_changed": len(writer.originals), "deactivated": len(writer.deactivated),
            "repeats": len(seen) - len(set(seen)), "gaps": len(expected - set(seen)),
            "foreign": len(set(seen) - at_start)})
    return {"runs": results,
            "median_seconds": statistics.median(r["seconds"] for r in results),
            "total_repeats": sum(r["repeats"] for r in results),
            "total_gaps": sum(r["gaps"] for r in results)}


def page_json_while_writing(app, state: str) -> dict:
    """The JSON search paged by page number under the same kind of writes (for contrast)."""
    client = app.test_client()
    query = {"state": state, "accepting_new_patients": "false", "per_page": "100"}

    def page(number):
        response = client.get("/api/v1/providers/search?" + urlencode({**query,
                                                                       "page": number}))
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return json.loads(response.get_data())

    first = page(1)
    at_start = set()
    for number in range(1, -(-first["total"] // 100) + 1):
        at_start |= {item["id"] for item in page(number)["items"]}
    writer = Writer(app, sorted(at_start), seed=99)
    seen, number = [], 1
    writer.start()
    try:
        while True:
            items = page(number)["items"]
            if not items:
                break
            seen += [item["id"] for item in items]
            number += 1
            time.sleep(0.005)
    finally:
        writer.stop.set()
        writer.join()
        writer.restore()
    expected = at_start - writer.deactivated
    return {"results_at_start": len(at_start), "returned": len(seen), "pages": number - 1,
            "writer_commits": writer.commits, "listings_changed": len(writer.originals),
            "repeats": len(seen) - len(set(seen)), "gaps": len(expected - set(seen))}


def main() -> None:
    """Run both parts and write the report next to the benchmark data."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--paging-runs", type=int, default=3)
    args = parser.parse_args()

    app = bench_app(args.count, args.database)
    app.config["SEARCH_LISTING_CACHE"] = True
    report = {"count": args.count, "database": args.database, "queries": args.queries,
              "machine": f"{os.cpu_count()} cores", "when": dt.datetime.now().isoformat()}
    queries = sample_queries(app, args.queries)
    report["search"] = compare(app, queries)
    print(json.dumps(report, indent=1), flush=True)
    state, size = state_near_1000(app)
    report["paging_state"] = {"state": state, "public_in_person_listings": size}
    report["paging_fhir"] = page_fhir_while_writing(app, state, args.paging_runs)
    print(json.dumps({k: report[k] for k in ("paging_state", "paging_fhir")}, indent=1),
          flush=True)
    report["paging_json_for_contrast"] = page_json_while_writing(app, state)
    print(json.dumps(report["paging_json_for_contrast"], indent=1), flush=True)
    out = os.path.join(data_dir(args.count, args.database), f"fhir-{int(time.time())}.json")
    with open(out, "w") as handle:
        json.dump(report, handle, indent=1)
    print("written", out)


if __name__ == "__main__":
    main()
