"""The whole search page (HTML) against the JSON search, in process, same queries.

Run from the project root::

    .venv/bin/python -m bench.page_bench --count 100000 --queries 200

Each query of ``bench.common.structured_queries`` is asked three times through the test
client, interleaved: ``GET /api/v1/providers/search`` (JSON), ``GET /`` (the page: form,
chips, cards, facets) and the same page in Spanish (``Accept-Language: es``). Prints
p50/p95/max of each and the p95 ratios to JSON (the acceptance bound is 1.5).
"""

from __future__ import annotations

import argparse
import time

from bench.common import bench_app, structured_queries, summary


def main() -> None:
    """Measure and print both latencies and the p95 ratio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--database", default="sqlite")
    args = parser.parse_args()
    app = bench_app(args.count, args.database)
    client = app.test_client()
    queries = structured_queries(args.queries)
    kinds = (("json", "/api/v1/providers/search", "en"), ("html", "/", "en"),
             ("html-es", "/", "es"))
    for _, path, lang in kinds:  # load the index, compile the templates
        client.get(path, query_string=queries[0], headers={"Accept-Language": lang})
    timings: dict[str, list[float]] = {kind: [] for kind, _, _ in kinds}
    for query in queries:
        for kind, path, lang in kinds:
            started = time.perf_counter()
            response = client.get(path, query_string=query, headers={"Accept-Language": lang})
            timings[kind].append(time.perf_counter() - started)
            assert response.status_code == 200, (path, query, response.status_code)
    figures = {kind: summary(seconds) for kind, seconds in timings.items()}
    for kind, found in figures.items():
        print(f"{kind}: n={found['n']} p50={found['p50']:.1f} ms "
              f"p95={found['p95']:.1f} ms max={found['max']:.1f} ms")
    for kind in ("html", "html-es"):
        print(f"p95 ratio {kind}/json: {figures[kind]['p95'] / figures['json']['p95']:.2f}")


if __name__ == "__main__":
    main()
