"""Notification delivery benchmark (issue 12), on PostgreSQL.

Two phases against real processes on this machine:

1. **Throughput**: a backlog of ``--backlog`` webhook deliveries (events recorded as the
   app records them) is drained by ``--workers`` ``referral worker`` processes posting to
   a local HTTP receiver (HTTP/1.1 keep-alive, every signature verified with
   ``standardwebhooks``). Deliveries per second = deliveries / (last - first arrival).
2. **Latency under load**: a gunicorn server takes ``--rate`` referral creations per
   second (``POST /api/v1/referrals`` over HTTP) for ``--seconds``; the receiving clinic
   has ``--endpoints`` webhook endpoints, so each referral fans out to that many webhook
   deliveries (plus one email to the local outbox). Measured: referral creation latency
   (client side) and the time from the event's row (``event.created_at``, written just
   before the commit) to its first arrival at the receiver.

Command: ``.venv/bin/python -m bench.delivery_bench`` (defaults: 2 workers, backlog 4000,
8 endpoints, 25 referrals/s for 30 s: 200 webhook deliveries/s).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

from bench.common import percentile, postgres_schema, summary

SCHEMA = "bench_delivery"


def _serve(connection) -> None:
    """The receiver process: a keep-alive HTTP server that verifies every signature and
    notes each (endpoint, webhook-id)'s first arrival; commands come through a pipe."""
    secrets: dict[str, Webhook] = {}
    first_arrival: dict[tuple[str, str], float] = {}
    counts = {"arrivals": 0, "bad": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            now = time.time()
            try:
                secrets[self.path].verify(data, dict(self.headers.items()))
                ok = True
            except Exception:
                ok = False
            with lock:
                counts["arrivals"] += 1
                counts["bad"] += not ok
                first_arrival.setdefault((self.path, self.headers.get("webhook-id")), now)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    connection.send(server.server_port)
    while True:
        command, *values = connection.recv()
        if command == "secret":
            secrets[values[0]] = Webhook(values[1])
        elif command == "dump":
            with lock:
                connection.send((dict(first_arrival), dict(counts)))
        elif command == "clear":
            with lock:
                first_arrival.clear()
                counts.update(arrivals=0, bad=0)
        else:
            return


class Receiver:
    """The receiver, in a process of its own (no GIL shared with the load generator)."""

    def __init__(self):
        import multiprocessing

        self.connection, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(child,), daemon=True)
        self.process.start()
        self.port = self.connection.recv()

    def url(self, path: str) -> str:
        """The URL of a path on the receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def secret(self, path: str, secret: str) -> None:
        """Verify posts to ``path`` with this secret."""
        self.connection.send(("secret", path, secret))

    def dump(self) -> tuple[dict, dict]:
        """First arrivals by (endpoint, webhook-id), and the counts."""
        self.connection.send(("dump",))
        return self.connection.recv()

    def clear(self) -> None:
        """Forget what arrived so far."""
        self.connection.send(("clear",))

    def close(self) -> None:
        """Stop the receiver process."""
        self.connection.send(("stop",))
        self.process.join(timeout=10)


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    """A fresh schema of its own on the benchmark PostgreSQL server."""
    return postgres_schema(SCHEMA, fresh=True)


def environment(url: str, **extra) -> dict:
    """The environment of a server or worker process on the benchmark database."""
    return {**os.environ, "DATABASE_URL": url, "RATE_LIMITS": "0",
            "REFERRAL_INSTANCE_PATH": tempfile.mkdtemp(prefix="bench-delivery-"),
            "WORKER_POLL": "0.1", "WORKER_DAILY_JOBS": "0", **extra}


def start_workers(url: str, count: int, concurrency: int) -> list[subprocess.Popen]:
    """Start ``count`` ``referral worker`` processes."""
    return [subprocess.Popen([sys.executable, "-m", "referral.cli", "worker",
                              "--concurrency", str(concurrency), "--report-every", "5"],
                             env=environment(url), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(count)]


def cpu_seconds(process: subprocess.Popen) -> float:
    """CPU time (user + system) a running process has used so far (Linux /proc)."""
    with open(f"/proc/{process.pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(processes) -> None:
    """Stop processes with SIGTERM and wait for them."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


def pending(app) -> int:
    """Webhook deliveries still pending."""
    from sqlalchemy import func, select

    from referral.extensions import db
    from referral.models import Delivery

    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Delivery)
                                  .where(Delivery.status == "pending",
                                         Delivery.channel == "webhook"))
        db.session.remove()
        return count


def main() -> None:
    """Run both phases and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backlog", type=int, default=4000)
    parser.add_argument("--endpoints", type=int, default=8)
    parser.add_argument("--rate", type=float, default=25.0, help="referrals per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()

    url = database_url()
    os.environ["REFERRAL_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="bench-delivery-app-")
    from flask_migrate import upgrade

    from referral import create_app
    from referral.clinics import create_clinic
    from referral.events import REFERRAL_CREATED, record
    from referral.extensions import db
    from referral.npi import make_npi
    from referral.webhooks import create_endpoint

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "RATE_LIMITS": False,
                      "SEARCH_SYNC_ON_COMMIT": False})
    receiver = Receiver()
    with app.app_context():
        upgrade()
        sender, sender_token = create_clinic("Bench Sender")
        target, _ = create_clinic("Bench Receiver")
        for number in range(args.endpoints):
            _, secret = create_endpoint(target, receiver.url(f"/hook{number}"),
                                               [REFERRAL_CREATED])
            receiver.secret(f"/hook{number}", secret)
        target_id = target.id
        # the backlog: events recorded exactly as the app records them
        events_needed = args.backlog // args.endpoints
        for start in range(0, events_needed, 200):
            for number in range(start, min(events_needed, start + 200)):
                record(REFERRAL_CREATED, {"referral_id": number, "status": "requested"},
                       clinic_ids=[target_id], email_to=[])
            db.session.commit()
    backlog = events_needed * args.endpoints
    print(f"backlog: {backlog} webhook deliveries to {args.endpoints} endpoints", flush=True)

    # Phase 1: throughput
    workers = start_workers(url, args.workers, args.concurrency)
    started = time.time()
    deadline = started + 600
    while pending(app) and time.time() < deadline:
        time.sleep(0.2)
    worker_cpu = sum(cpu_seconds(worker) for worker in workers)
    stop(workers)
    first_arrival, counts = receiver.dump()
    arrivals = sorted(first_arrival.values())
    span = arrivals[-1] - arrivals[0]
    throughput = len(arrivals) / span if span else float("nan")
    print(f"phase 1: {len(arrivals)} delivered (endpoint, webhook-id) in {span:.1f} s "
          f"= {throughput:.0f} deliveries/s with {args.workers} workers; "
          f"{counts['arrivals']} arrivals, {counts['bad']} bad signatures; the workers used "
          f"{worker_cpu:.1f} CPU-seconds = {len(arrivals) / worker_cpu:.0f} deliveries per "
          f"CPU-second; load average {os.getloadavg()[0]:.1f}", flush=True)

    # Phase 2: referral creation and first-attempt latency under load
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "4", "-b",
         f"127.0.0.1:{port}", "--log-level", "warning", "--access-logfile", "/dev/null",
         "referral:create_app()"],
        env=environment(url, SEARCH_SYNC_ON_COMMIT="0"), start_new_session=True)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    token_headers = {"Authorization": f"Bearer {sender_token}",
                     "Content-Type": "application/json"}

    def post(connection, path, body):
        connection.request("POST", path, body=json.dumps(body), headers=token_headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())

    setup = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    listing = {"first_name": "Bench", "modalities": ["CBT"], "age_groups": ["adult"],
               "telehealth": True, "in_person": True, "licensed_states": ["MA"],
               "address_line1": "1 Main St", "state": "MA", "zip": "02115",
               "accepts_coordinated_care": True}
    status, therapist = post(setup, "/api/v1/providers", {
        **listing, "npi": make_npi("410000001"), "last_name": "Therapist",
        "provider_type": "counselor"})
    assert status == 201, therapist
    with app.app_context():
        from referral.models import Provider
        prescriber = Provider(npi=make_npi("410000002"), first_name="Bench",
                              last_name="Prescriber", role="prescriber",
                              provider_type="psychiatrist", taxonomy_codes=["2084P0800X"],
                              telehealth=True, in_person=True, licensed_states=["MA"],
                              state="MA", zip="02115", accepts_coordinated_care=True,
                              clinic_id=target_id)
        db.session.add(prescriber)
        db.session.commit()
        prescriber_id = prescriber.id
    receiver.clear()
    workers = start_workers(url, args.workers, args.concurrency)
    time.sleep(3)  # the workers start
    latencies: list[float] = []
    created: list[int] = []
    lock = threading.Lock()
    threads = 4
    per_thread = args.rate / threads
    load_started = time.time()

    def load(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        number = 0
        while True:
            due = load_started + number / per_thread
            if due - load_started > args.seconds:
                return
            time.sleep(max(0.0, due - time.time()))
            begin = time.perf_counter()
            status, body = post(connection, "/api/v1/referrals", {
                "therapist_id": therapist["id"], "prescriber_id": prescriber_id,
                "patient_ref": f"PT-{offset}-{number}", "patient_state": "MA",
                "contact_preference": "phone", "consent_to_coordinate": True})
            elapsed = time.perf_counter() - begin
            assert status == 201, body
            with lock:
                latencies.append(elapsed)
                created.append(body["id"])
            number += 1

    runners = [threading.Thread(target=load, args=(n,)) for n in range(threads)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    load_seconds = time.time() - load_started
    deadline = time.time() + 120
    while pending(app) and time.time() < deadline:
        time.sleep(0.2)
    stop(workers)
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)
    with app.app_context():
        from sqlalchemy import select

        from referral.models import Event
        committed = {public_id: at.timestamp() for public_id, at in db.session.execute(
            select(Event.public_id, Event.created_at).where(Event.referral_id.in_(created)))}
    first_arrival, counts = receiver.dump()
    receiver.close()
    delays = [arrived - committed[webhook_id]
              for (_, webhook_id), arrived in first_arrival.items()
              if webhook_id in committed]
    expected = len(committed) * args.endpoints
    creation = summary(latencies)
    webhooks_per_second = len(created) * args.endpoints / load_seconds
    print(f"phase 2: {len(created)} referrals in {load_seconds:.1f} s "
          f"({webhooks_per_second:.0f} webhook deliveries/s offered); creation p50 "
          f"{creation['p50']:.1f} ms, p95 {creation['p95']:.1f} ms, max {creation['max']:.1f} ms",
          flush=True)
    print(f"first attempt after the event's row: {len(delays)} deliveries, p50 "
          f"{percentile(delays, 0.5) * 1000:.0f} ms, p95 {percentile(delays, 0.95) * 1000:.0f} ms,"
          f" max {max(delays) * 1000:.0f} ms; {expected - len(delays)} never arrived; "
          f"{counts['bad']} bad signatures", flush=True)


if __name__ == "__main__":
    main()
