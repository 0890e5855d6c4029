"""The whole search page (HTML) against the JSON search, in process, same queries.

Run from the project root::

    .venv/bin/python -m bench.page_bench --count 100000 --queries 200

Each query of ``bench.common.structured_queries`` is asked twice through the test
client: ``GET /`` (the page: form, chips, cards, facets) and
``GET /api/v1/providers/search`` (JSON). Prints p50/p95/max of each and the p95 ratio
(the acceptance bound is 1.5).
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
    client.get("/api/v1/providers/search", query_string=queries[0])  # load the index once
    timings: dict[str, list[float]] = {"json": [], "html": []}
    for query in queries:
        for kind, path in (("json", "/api/v1/providers/search"), ("html", "/")):
            started = time.perf_counter()
            response = client.get(path, query_string=query)
            timings[kind].append(time.perf_counter() - started)
            assert response.status_code == 200, (path, query, response.status_code)
    json_, html = summary(timings["json"]), summary(timings["html"])
    for kind, figures in (("json", json_), ("html", html)):
        print(f"{kind}: n={figures['n']} p50={figures['p50']:.1f} ms "
              f"p95={figures['p95']:.1f} ms max={figures['max']:.1f} ms")
    print(f"p95 ratio html/json: {html['p95'] / json_['p95']:.2f}")


if __name__ == "__main__":
    main()
