"""Concurrent conflicting writes through gunicorn: nothing fails, nothing breaks a rule,
every success is stored, every refusal wrote nothing, and the search index agrees.

Run from the project root (PostgreSQL by default: ``BENCH_POSTGRES_URL``, default the
local server; the run uses a schema of its own, ``bench_races``, made afresh)::

    .venv/bin/python -m bench.races_bench                   # 200 writes, 8 threads, 2 workers
    .venv/bin/python -m bench.races_bench --database sqlite --rounds 25

Each round sends 8 writes at the same instant (8 threads, a barrier), two to each of
four rows: two hot listings get PATCHes that are each valid alone but not together
(fee_min 100 and fee_max 80 from 50-150; telehealth off and in person off), two fresh
referrals get two answers each (cancel and accept; accept and reject; accept twice).
Every listing PATCH also sets ``bio`` to a text used once, so each one can be looked
for in the audit trail. Checks, after all rounds:

- no 5xx; for each row in each round exactly one 2xx;
- every 2xx listing change is in the audit trail, every refused one is not; every
  stored listing passes the listing rules; each referral's status and history hold
  exactly the answer that won;
- ``check_index(..., repair=False)``: the search index has every active listing at its
  stored version (no missing, extra or outdated document).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

from bench.common import POSTGRES, postgres_schema, summary

SCHEMA = "bench_races"
HOST = "127.0.0.1"
LISTING_PAIRS = (({"fee_min": 100}, {"fee_max": 80}),
                 ({"telehealth": False}, {"in_person": False}))
LISTING_START = {"fee_min": 50, "fee_max": 150, "telehealth": True, "in_person": True}
REFERRAL_PAIRS = ((("sender", "cancelled"), ("receiver", "accepted")),
                  (("receiver", "accepted"), ("receiver", "rejected")),
                  (("receiver", "accepted"), ("receiver", "accepted")))


def database(kind: str) -> str:
    """A fresh empty database for the run: a PostgreSQL schema of its own, or a SQLite file."""
    if kind == "sqlite":
        return "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="races-bench-"), "db.sqlite3")
    return postgres_schema(SCHEMA, fresh=True)


class Client:
    """JSON requests to the server, one connection each."""

    def __init__(self, port: int):
        self.port = port

    def connect(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=120)
        connection.connect()
        return connection

    def send(self, method, path, body=None, token=None, connection=None):
        """``(status, json, seconds)`` of one request."""
        connection = connection or self.connect()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        try:
            connection.request(method, path, None if body is None else json.dumps(body), headers)
            response = connection.getresponse()
            payload = json.loads(response.read() or b"null")
            return response.status, payload, time.perf_counter() - started
        finally:
            connection.close()


def setup(app, client: Client, background: int) -> dict:
    """Background listings, two clinics with tokens, two hot listings and a prescriber."""
    from flask_migrate import upgrade

    from referral.auth import issue_token
    from referral.extensions import db
    from referral.models import Clinic
    from referral.npi import make_npi
    from seeds.load import seed_directory

    with app.app_context():
        upgrade()
        if background:
            seed_directory(background, seed=5)
        tokens = {}
        for side in ("sender", "receiver"):
            clinic = Clinic(name=f"Race bench {side}")
            db.session.add(clinic)
            _, tokens[side] = issue_token(clinic)
        db.session.commit()
    npis = (make_npi(str(900_000_000 + n)) for n in itertools.count())
    listings = []
    for name in ("Hotlisting", "Warmlisting"):
        status, body, _ = client.send("POST", "/api/v1/providers", {
            "npi": next(npis), "first_name": "Bench", "last_name": name,
            "provider_type": "counselor", "modalities": ["CBT"], "licensed_states": ["MA"],
            "address_line1": "1 Main St", "state": "MA", "zip": "02115", **LISTING_START},
            tokens["sender"])
        assert status == 201, body
        listings.append(body["id"])
    therapist = listings[0]
    status, prescriber, _ = client.send("POST", "/api/v1/providers", {
        "npi": next(npis), "first_name": "Bench", "last_name": "Prescriber",
        "provider_type": "psychiatric_np", "taxonomy_codes": ["363LP0808X"],
        "telehealth": True, "in_person": False, "licensed_states": ["MA"],
        "accepts_coordinated_care": True}, tokens["receiver"])
    assert status == 201, prescriber
    return {"tokens": tokens, "listings": listings, "therapist": therapist,
            "prescriber": prescriber["id"]}


def run(client: Client, world: dict, rounds: int, threads: int) -> dict:
    """The rounds of simultaneous writes; every answer with what it was."""
    tokens = world["tokens"]
    markers = itertools.count(1)
    rng = random.Random(7)
    answers: list[dict] = []
    referrals: list[tuple[int, tuple]] = []
    for round_number in range(rounds):
        writes = []
        for listing_id in world["listings"]:  # back to the start, then two conflicting edits
            status, body, _ = client.send("PATCH", f"/api/v1/providers/{listing_id}",
                                          LISTING_START, tokens["sender"])
            assert status == 200, body
            pair = rng.choice(LISTING_PAIRS)
            for change in pair:
                marker = f"bench write {next(markers)}"
                writes.append({"kind": "listing", "target": listing_id, "marker": marker,
                               "change": change, "method": "PATCH",
                               "path": f"/api/v1/providers/{listing_id}",
                               "body": {**change, "bio": marker},
                               "token": tokens["sender"]})
        for _ in range((threads - len(writes)) // 2):
            status, body, _ = client.send("POST", "/api/v1/referrals", {
                "therapist_id": world["therapist"], "prescriber_id": world["prescriber"],
                "patient_ref": f"PT-bench-{round_number}-{len(referrals)}",
                "patient_state": "MA", "concerns": ["anxiety"], "contact_preference": "phone",
                "consent_to_coordinate": True}, tokens["sender"])
            assert status == 201, body
            pair = rng.choice(REFERRAL_PAIRS)
            referrals.append((body["id"], pair))
            for who, wanted in pair:
                writes.append({"kind": "referral", "target": body["id"], "wanted": wanted,
                               "method": "POST", "path": f"/api/v1/referrals/{body['id']}/status",
                               "body": {"status": wanted, "reason": "no_capacity"},
                               "token": tokens[who]})
        barrier = threading.Barrier(len(writes))
        workers = [threading.Thread(target=_send_at_once, args=(
            client, write, client.connect(), barrier, round_number)) for write in writes]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        answers.extend(writes)
    return {"answers": answers, "referrals": referrals, "rounds": rounds}


def _send_at_once(client: Client, write: dict, connection, barrier, round_number: int) -> None:
    barrier.wait()
    write["status"], write["answer"], write["seconds"] = client.send(
        write["method"], write["path"], write["body"], write["token"], connection)
    write["round"] = round_number


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def verify(app, index_dir: str, result: dict) -> dict:
    """Compare every answer with the database and the database with the search index."""
    from sqlalchemy import select

    from referral.extensions import db
    from referral.listing_rules import listing_problems
    from referral.models import Provider, ProviderAudit, Referral
    from referral.schemas.listings import LISTING_FIELDS
    from referral.search_sync import SearchState, check_index

    answers = result["answers"]
    problems: list[str] = []
    by_target: dict = {}
    for write in answers:
        by_target.setdefault((write["round"], write["kind"], write["target"]), []).append(write)
    for key, writes in by_target.items():
        winners = [w for w in writes if 200 <= w["status"] < 300]
        if len(winners) != 1:
            problems.append(f"{key}: {len(winners)} successes")
    with app.app_context():
        audited = set()
        for audit in db.session.scalars(select(ProviderAudit).where(
                ProviderAudit.action == "update")):
            bio = audit.changes.get("bio", {}).get("new")
            if bio is not None:
                audited.add((audit.provider_id, bio))
        for write in answers:
            if write["kind"] != "listing" or write["body"] == LISTING_START:
                continue
            stored = (write["target"], write["marker"]) in audited
            if stored != (write["status"] == 200):
                problems.append(f"listing write {write['marker']} answered {write['status']} "
                                f"but {'is' if stored else 'is not'} in the audit trail")
        violations = 0
        for provider in db.session.scalars(select(Provider)):
            values = {field: getattr(provider, field) for field in LISTING_FIELDS}
            if listing_problems(values):
                violations += 1
                problems.append(f"listing {provider.id} breaks the rules")
        for referral_id, _ in result["referrals"]:
            referral = db.session.get(Referral, referral_id)
            won = [w["wanted"] for w in answers
                   if w["kind"] == "referral" and w["target"] == referral_id
                   and w["status"] == 200]
            history = [event.to_status for event in referral.events]
            if won != [referral.status] or history != ["requested", referral.status]:
                problems.append(f"referral {referral_id}: won {won}, stored {referral.status}, "
                                f"history {history}")
                violations += 1
        started = time.monotonic()
        with db.engine.connect() as connection:
            while True:
                report = check_index(SearchState(index_dir), connection, repair=False)
                behind = report["missing"] + report["extra"] + report["outdated"]
                if not behind or time.monotonic() - started > 30:
                    break
                time.sleep(0.1)
        index_seconds = time.monotonic() - started
        db.engine.dispose()
    if behind:
        problems.append(f"search index differs: {report}")
    return {"problems": problems, "invariant_violations": violations,
            "index": {key: report[key] if isinstance(report[key], int) else len(report[key])
                      for key in ("database", "indexed", "missing", "extra", "outdated")},
            "index_settled_after_s": round(index_seconds, 2)}


def _rounded(figures: dict) -> dict:
    return {key: round(value, 1) for key, value in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="Concurrent conflicting writes")
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--background", type=int, default=2000,
                        help="generated listings in the directory besides the hot ones")
    args = parser.parse_args()

    os.environ["REFERRAL_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="races-bench-instance-")
    from referral import create_app

    url = database(args.database)
    index_dir = tempfile.mkdtemp(prefix="races-bench-index-")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "INDEX_DIR": index_dir,
                      "RATE_LIMITS": False})
    port = free_port()
    log_path = os.path.join(tempfile.mkdtemp(prefix="races-bench-log-"), "server.log")
    environment = {**os.environ, "DATABASE_URL": url, "INDEX_DIR": index_dir,
                   "RATE_LIMITS": "0"}
    client = Client(port)
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", f"{HOST}:{port}",
             "--log-level", "warning", "referral:create_app()"],
            env=environment, start_new_session=True, stdout=log, stderr=log)
    try:
        from flask_migrate import upgrade
        with app.app_context():
            upgrade()
        deadline = time.monotonic() + 120
        while True:
            try:
                client.send("GET", "/api/v1/vocabularies")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        world = setup(app, client, args.background)
        started = time.perf_counter()
        result = run(client, world, args.rounds, args.threads)
        wall = time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    checked = verify(app, index_dir, result)
    answers = result["answers"]
    statuses: dict[str, int] = {}
    for write in answers:
        statuses[str(write["status"])] = statuses.get(str(write["status"]), 0) + 1
    raced = sum(1 for w in answers if w["status"] == 409
                and "saved first" in w["answer"]["message"])
    with open(log_path, encoding="utf-8", errors="replace") as handle:
        logged = handle.read()
    report = {
        "database": args.database, "workers": args.workers, "threads": args.threads,
        "writes": len(answers), "statuses": dict(sorted(statuses.items())),
        "5xx": sum(1 for w in answers if w["status"] >= 500),
        "409_concurrent_change": raced,
        "invariant_violations": checked["invariant_violations"],
        "problems": checked["problems"][:20],
        "index": checked["index"], "index_settled_after_s": checked["index_settled_after_s"],
        "rounds_wall_s": round(wall, 2),
        "writes_per_s": round(len(answers) / wall, 1),
        "latency_2xx_ms": _rounded(summary([w["seconds"] for w in answers
                                            if w["status"] < 300])),
        "latency_409_ms": _rounded(summary([w["seconds"] for w in answers
                                            if w["status"] == 409] or [0.0])),
        "failing_row_in_server_log": "Failing row" in logged,
    }
    print(json.dumps(report, indent=1))
    if args.database == "postgres":
        from sqlalchemy import create_engine, text

        from config import normalize_database_url
        engine = create_engine(normalize_database_url(POSTGRES))
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        engine.dispose()
    sys.exit(1 if checked["problems"] or report["5xx"] else 0)


if __name__ == "__main__":
    main()
