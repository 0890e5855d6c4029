"""Search benchmark: this project against a naive whoosh-only index and tantivy.

Run from the project root, e.g.::

    .venv/bin/python -m bench.search_bench --count 100000 --naive --tantivy --reindex
    .venv/bin/python -m bench.search_bench --count 1000000 --tantivy --reindex
    .venv/bin/python -m bench.search_bench --count 1000000 --queries 200 --families

Measured in process, on the same generated corpus and the same queries:

- *structured*: modality + telehealth-or-radius at a real ZIP + max fee + insurance +
  accepting new patients, with total, facets and the first page;
- *name*: free-text names (full names, last names, last names with a typo);
- with ``--families``: issue 17's query families alone (``bench.common.FAMILIES``: free
  text with and without a ZIP, one concern nationally, a 100-mile radius by distance,
  deep pages, telehealth in a state, every filter at once), end to end.

"this project" is ``referral.search.search_providers`` end to end (index work,
the page's listings from the database or the per-process cache, geodesic distances
and reasons);
"engine" is the index part alone. Latencies are per query after one warm-up pass.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import time

from bench.common import (
    FAMILIES,
    bench_app,
    data_dir,
    family_queries,
    name_queries,
    structured_queries,
    summary,
)

DAY = 86400.0


def measure(function, items) -> dict:
    """Latency summary of ``function(item)`` over ``items`` (after one warm-up call each)."""
    for item in items[: min(20, len(items))]:
        function(item)
    seconds = []
    for item in items:
        started = time.perf_counter()
        function(item)
        seconds.append(time.perf_counter() - started)
    return summary(seconds)


# ---------------------------------------------------------------------------
# This project


def families(app, count: int, only=None) -> dict:
    """p50, p95 and mean matches of ``search_providers`` end to end per query family."""
    from referral.extensions import db
    from referral.schemas.listings import listing_dump
    from referral.schemas.search import SearchQuerySchema
    from referral.search import search_providers
    from referral.services import search_service

    service = search_service(app)
    schema = SearchQuerySchema()
    now = dt.datetime.now(dt.UTC)
    results = {}
    with app.app_context():
        for name, queries in family_queries(count).items():
            if only and name not in only:
                continue
            loaded = [schema.load(q) for q in queries]
            totals = []

            def full(params, totals=totals):
                totals.append(search_providers(service, db.session, params, listing_dump,
                                               now=now)["total"])
                db.session.rollback()

            results[name] = measure(full, loaded)
            measured = totals[-len(loaded):]
            results[name]["mean_matches"] = round(sum(measured) / len(measured))
            results[name]["load_average"] = round(os.getloadavg()[0], 1)
            print(name, json.dumps(results[name]), flush=True)
    return results


def before_and_after(args, app) -> dict:
    """Each family measured with ``args.before``'s code and with this tree's, alternating,
    each variant in a fresh subprocess on the same database, index and queries."""
    import subprocess
    import sys
    import tempfile

    from bench.common import DATA, HERE

    del app  # the database exists: the subprocesses open it themselves
    exported = tempfile.mkdtemp(prefix="search-bench-code-")
    archive = subprocess.run(["git", "archive", args.before], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", exported], input=archive, check=True)
    shutil.rmtree(os.path.join(exported, "bench"))
    shutil.copytree(HERE, os.path.join(exported, "bench"),
                    ignore=shutil.ignore_patterns("data", "__pycache__"))
    here = os.path.dirname(HERE)
    results: dict = {}
    try:
        for family in args.families or FAMILIES:
            for label, code in ((f"before ({args.before})", exported), ("after", here)):
                output = subprocess.run(
                    [sys.executable, "-m", "bench.search_bench", "--count", str(args.count),
                     "--queries", str(args.queries), "--families", family],
                    cwd=code, env={**os.environ, "PYTHONPATH": code, "BENCH_DATA": DATA},
                    capture_output=True, text=True, check=True).stdout
                found = json.loads(output[output.index("\n{") + 1:])["families"][family]
                results.setdefault(family, {})[label] = found
                print(family, label, json.dumps(found), flush=True)
    finally:
        shutil.rmtree(exported, ignore_errors=True)
    print("| family | variant | p50 | p95 | mean matches | load |")
    for family, variants in results.items():
        for label, r in variants.items():
            print(f"| {family} | {label} | {r['p50']:.1f} ms | {r['p95']:.1f} ms | "
                  f"{r['mean_matches']:,} | {r['load_average']} |")
    return results


def project(app, queries, names, reindex: bool, procs: int) -> dict:
    from referral.extensions import db
    from referral.schemas.listings import listing_dump
    from referral.schemas.search import SearchQuerySchema
    from referral.search import build_criteria, search_providers, understand_query
    from referral.services import search_service
    from search_index.searcher import search

    results = {}
    service = search_service(app)
    state = service.state
    with app.app_context():
        if reindex or state.text.current_name() is None:
            with db.engine.connect() as connection:
                started = time.perf_counter()
                indexed = state.rebuild(connection, procs=procs)
                elapsed = time.perf_counter() - started
            results["reindex"] = {"documents": indexed, "seconds": round(elapsed, 1),
                                  "per_second": round(indexed / elapsed)}
        state.table = None
        started = time.perf_counter()
        with db.engine.connect() as connection:
            state.refresh_table(connection)
        results["table_load_seconds"] = round(time.perf_counter() - started, 2)
        schema = SearchQuerySchema()
        loaded = [schema.load(q) for q in queries]
        now = dt.datetime.now(dt.UTC)

        dump = listing_dump

        def full(params):
            search_providers(service, db.session, params, dump, now=now)
            db.session.rollback()

        def engine(params):
            criteria, _ = build_criteria(params, understand_query(None), now, 90, 365)
            search(state.table, criteria)

        results["structured"] = measure(full, loaded)
        results["structured_engine"] = measure(engine, loaded)
        named = [schema.load({"q": name}) for name in names]
        results["name"] = measure(full, named)
        hits = [search_providers(service, db.session, p, dump, now=now)["total"]
                for p in loaded[:50]]
        results["structured_mean_total"] = round(sum(hits) / len(hits))
    return results


def active_records(app):
    """``(table record, full name)`` of every active listing, for the other engines."""
    from referral.extensions import db
    from referral.search_sync import table_records, text_documents

    with app.app_context(), db.engine.connect() as connection:
        names = {pid: doc["name"] for pid, doc in text_documents(connection) if doc}
        for record in table_records(connection):
            if record["active"] and record["id"] in names:
                yield record, names[record["id"]]


# ---------------------------------------------------------------------------
# Naive baseline: every filter as a whoosh query, facets and distances over all hits


def _naive_schema():
    from whoosh.fields import BOOLEAN, KEYWORD, NUMERIC, STORED, TEXT, Schema

    return Schema(
        pid=NUMERIC(int, bits=64, stored=True, signed=False), name=TEXT,
        modalities=KEYWORD(stored=True, commas=True), insurance=KEYWORD(stored=True, commas=True),
        languages=KEYWORD(stored=True, commas=True), licensed=KEYWORD(commas=True),
        provider_type=KEYWORD(stored=True), telehealth=BOOLEAN(stored=True),
        in_person=BOOLEAN, accepting=BOOLEAN, fee_min=NUMERIC(int, stored=True),
        lat=NUMERIC(float, stored=True), lon=NUMERIC(float, stored=True),
        verified=NUMERIC(float), extra=STORED)


def naive_build(app, directory: str) -> dict:
    from whoosh import index as whoosh_index

    if os.path.exists(os.path.join(directory, "DONE")):
        return {"reused": True}
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    ix = whoosh_index.create_in(directory, _naive_schema())
    started = time.perf_counter()
    writer = ix.writer(limitmb=256)
    count = 0
    for r, name in active_records(app):
        writer.add_document(
            pid=r["id"], name=name, modalities=",".join(r["modalities"]),
            insurance=",".join(r["insurance"]), languages=",".join(r["languages"]),
            licensed=",".join(r["licensed_states"]), provider_type=r["provider_type"],
            telehealth=bool(r["telehealth"]), in_person=bool(r["in_person"]),
            accepting=bool(r["accepting_new_patients"]),
            fee_min=r["fee_min"] if r["fee_min"] is not None else 100_000,
            lat=r["latitude"] if r["latitude"] is not None else 0.0,
            lon=r["longitude"] if r["longitude"] is not None else 0.0,
            verified=r["verified_at"] or 0.0)
        count += 1
    writer.commit()
    elapsed = time.perf_counter() - started
    open(os.path.join(directory, "DONE"), "w").close()
    return {"documents": count, "seconds": round(elapsed, 1), "per_second": round(count / elapsed)}


def naive(directory: str, queries, names) -> dict:
    from geopy.distance import geodesic
    from whoosh import index as whoosh_index
    from whoosh import query as wq
    from whoosh.qparser import QueryParser

    from referral.geo import lookup_zip
    from search_index.distance import bounding_box

    ix = whoosh_index.open_dir(directory)
    searcher = ix.searcher()
    now = time.time()

    def structured(params):
        place = lookup_zip(params["zip"])
        south, north, west, east = bounding_box(place.latitude, place.longitude,
                                                params["radius_miles"])
        reach = wq.Or([
            wq.And([wq.Term("telehealth", True), wq.Term("licensed", place.state.lower())]),
            wq.And([wq.Term("in_person", True), wq.NumericRange("lat", south, north),
                    wq.NumericRange("lon", west, east)])])
        q = wq.And([
            wq.Or([wq.Term("modalities", m.lower()) for m in params["modality"]]),
            wq.NumericRange("fee_min", 0, params["max_fee"]),
            wq.Or([wq.Term("insurance", i) for i in params["insurance"]]),
            wq.Term("accepting", True), wq.NumericRange("verified", now - 365 * DAY, None),
            reach])
        results = searcher.search(q, limit=None)
        facets: dict = {}
        kept = []
        for hit in results:
            fields = hit.fields()
            if fields["lat"] and abs(fields["lat"]) > 0:
                miles = geodesic((place.latitude, place.longitude),
                                 (fields["lat"], fields["lon"])).miles
                fields["distance"] = miles
            kept.append(fields)
            for name in ("modalities", "insurance", "languages"):
                for value in (fields.get(name) or "").split(","):
                    facets[(name, value)] = facets.get((name, value), 0) + 1
        kept.sort(key=lambda f: f.get("distance", 1e9))
        return len(kept), kept[:20]

    parser = QueryParser("name", ix.schema)

    def name(text):
        return len(searcher.search(parser.parse(text), limit=20))

    return {"structured": measure(structured, queries), "name": measure(name, names)}


# ---------------------------------------------------------------------------
# tantivy reference


def tantivy_build(app, directory: str) -> dict:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("pid", stored=True, indexed=True, fast=True)
    builder.add_text_field("name", stored=False)
    for field in ("modalities", "insurance", "languages", "licensed", "provider_type"):
        builder.add_text_field(field, tokenizer_name="raw", fast=True)
    for field in ("telehealth", "in_person", "accepting"):
        builder.add_boolean_field(field, indexed=True, fast=True)
    builder.add_integer_field("fee_min", indexed=True, fast=True)
    for field in ("lat", "lon", "verified"):
        builder.add_float_field(field, indexed=True, fast=True)
    schema = builder.build()
    if os.path.exists(os.path.join(directory, "DONE")):
        return {"reused": True, "index": tantivy.Index(schema, path=directory), "schema": schema}
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    index = tantivy.Index(schema, path=directory)
    started = time.perf_counter()
    writer = index.writer(heap_size=512_000_000)
    count = 0
    for r, name in active_records(app):
        document = tantivy.Document()
        document.add_unsigned("pid", r["id"])
        document.add_text("name", name)
        for field, values in (("modalities", r["modalities"]), ("insurance", r["insurance"]),
                              ("languages", r["languages"]),
                              ("licensed", r["licensed_states"]),
                              ("provider_type", [r["provider_type"]])):
            for value in values:
                document.add_text(field, value)
        document.add_boolean("telehealth", bool(r["telehealth"]))
        document.add_boolean("in_person", bool(r["in_person"]))
        document.add_boolean("accepting", bool(r["accepting_new_patients"]))
        document.add_integer("fee_min", r["fee_min"] if r["fee_min"] is not None else 100_000)
        document.add_float("lat", float(r["latitude"] or 0.0))
        document.add_float("lon", float(r["longitude"] or 0.0))
        document.add_float("verified", float(r["verified_at"] or 0.0))
        writer.add_document(document)
        count += 1
    writer.commit()
    writer.wait_merging_threads()
    elapsed = time.perf_counter() - started
    open(os.path.join(directory, "DONE"), "w").close()
    index.reload()
    return {"documents": count, "seconds": round(elapsed, 1), "per_second": round(count / elapsed),
            "index": index, "schema": schema}


def tantivy_run(built: dict, queries, names) -> dict:
    from tantivy import FieldType, Occur, Query

    from referral.geo import lookup_zip
    from search_index.distance import bounding_box

    index, schema = built["index"], built["schema"]
    index.reload()
    searcher = index.searcher()
    now = time.time()
    must = Occur.Must
    aggregations = {
        "modality": {"terms": {"field": "modalities", "size": 20}},
        "insurance": {"terms": {"field": "insurance", "size": 20}},
        "language": {"terms": {"field": "languages", "size": 40}},
        "provider_type": {"terms": {"field": "provider_type", "size": 20}},
    }

    def structured(params):
        place = lookup_zip(params["zip"])
        south, north, west, east = bounding_box(place.latitude, place.longitude,
                                                params["radius_miles"])
        reach = Query.boolean_query([
            (Occur.Should, Query.boolean_query([
                (must, Query.term_query(schema, "telehealth", True)),
                (must, Query.term_query(schema, "licensed", place.state))])),
            (Occur.Should, Query.boolean_query([
                (must, Query.term_query(schema, "in_person", True)),
                (must, Query.range_query(schema, "lat", FieldType.Float, south, north)),
                (must, Query.range_query(schema, "lon", FieldType.Float, west, east))])),
        ])
        q = Query.boolean_query([
            (must, Query.term_set_query(schema, "modalities", list(params["modality"]))),
            (must, Query.range_query(schema, "fee_min", FieldType.Integer, 0, params["max_fee"])),
            (must, Query.term_set_query(schema, "insurance", list(params["insurance"]))),
            (must, Query.term_query(schema, "accepting", True)),
            (must, Query.range_query(schema, "verified", FieldType.Float, now - 365 * DAY,
                                     now + DAY)),
            (must, reach)])
        result = searcher.search(q, limit=20, count=True)
        searcher.aggregate(q, aggregations)
        return result.count

    def name(text):
        q, _ = index.parse_query_lenient(text, ["name"], fuzzy_fields={"name": (True, 1, True)})
        return searcher.search(q, limit=20, count=True).count

    return {"structured": measure(structured, queries), "name": measure(name, names)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--naive", action="store_true", help="include the whoosh-only baseline")
    parser.add_argument("--naive-queries", type=int, default=40)
    parser.add_argument("--tantivy", action="store_true", help="include tantivy")
    parser.add_argument("--reindex", action="store_true", help="time a full reindex first")
    parser.add_argument("--procs", type=int, default=2, help="processes for the reindex")
    parser.add_argument("--before", metavar="GIT_REF",
                        help="with --families: also measure the search code of this commit "
                             "(exported, with this benchmark) in a subprocess, family by "
                             "family alternating with this tree")
    parser.add_argument("--families", nargs="*", choices=FAMILIES, metavar="FAMILY",
                        help="measure only the query families of issue 17 (all when none "
                             f"is named: {', '.join(FAMILIES)})")
    args = parser.parse_args()

    app = bench_app(args.count)
    queries = structured_queries(args.queries)
    names = name_queries(app, args.queries)
    report = {"count": args.count, "queries": args.queries,
              "machine": f"{os.cpu_count()} cores", "when": dt.datetime.now().isoformat()}
    if args.families is not None:
        if args.before:
            report["families"] = before_and_after(args, app)
        else:
            report["families"] = families(app, args.queries, args.families)
        print(json.dumps(report, indent=1), flush=True)
        return
    report["project"] = project(app, queries, names, args.reindex, args.procs)
    print(json.dumps(report, indent=1), flush=True)
    if args.tantivy:
        built = tantivy_build(app, os.path.join(data_dir(args.count), "tantivy"))
        report["tantivy_build"] = {k: v for k, v in built.items() if k not in ("index", "schema")}
        report["tantivy"] = tantivy_run(built, queries, names)
        print(json.dumps({k: report[k] for k in ("tantivy_build", "tantivy")}, indent=1),
              flush=True)
    if args.naive:
        directory = os.path.join(data_dir(args.count), "naive_whoosh")
        report["naive_build"] = naive_build(app, directory)
        report["naive"] = naive(directory, queries[:args.naive_queries],
                                names[:args.naive_queries])
        print(json.dumps({k: report[k] for k in ("naive_build", "naive")}, indent=1), flush=True)
    out = os.path.join(data_dir(args.count), f"search-{int(time.time())}.json")
    with open(out, "w") as handle:
        json.dump(report, handle, indent=1)
    print("written", out)


if __name__ == "__main__":
    main()
