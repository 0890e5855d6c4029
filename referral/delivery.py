"""The delivery worker: sends the outbox's deliveries (webhooks, emails), retries with
exponential backoff, and gives up after ``WEBHOOK_MAX_ATTEMPTS`` (more than 24 hours).

Claiming uses leases, taken with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL
(an ``UPDATE`` with the same conditions on SQLite, whose writers are serialized): one
short transaction marks due deliveries as this worker's until ``lease_until`` and
counts the attempt, so several workers on several nodes never take the same attempt.
The sending happens outside any transaction, in a thread pool; the results are
written back only while the lease (owner and attempt number) is still this worker's.
A worker killed with ``kill -9`` loses nothing: its leases run out and another worker
(or the same one restarted) makes the attempt again, with the same ``webhook-id`` and
email Message-ID, so receivers keep each event once (at least once, idempotent).

Logs carry ids, event types, status codes and counts only: never payloads, message
text or patient fields.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError

from . import health_tally
from .crypto import encryptor
from .daily_jobs import run_daily_jobs
from .events import LISTING_REMINDER
from .extensions import db
from .mailer import compose, send_email
from .models import Clinic, Delivery, Event, WebhookEndpoint, utcnow
from .reminders import digest_email
from .webhooks import Outcome, Sender, signed_headers
from .webhooks import payload as webhook_payload

log = logging.getLogger(__name__)
table = Delivery.__table__
#: Seconds between a worker's looks at whether today's daily jobs have run.
DAILY_CHECK_SECONDS = 60.0


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones (doubling, capped), with
    up to 20% added at random so retries of many deliveries spread out."""
    return min(cap, base * 2 ** max(0, attempts - 1)) * random.uniform(1.0, 1.2)


def retry_span(base: float, cap: float, max_attempts: int) -> float:
    """The shortest time from the first attempt to the last (no random part)."""
    return sum(min(cap, base * 2 ** (n - 1)) for n in range(1, max_attempts))


@dataclass
class Job:
    """One claimed attempt, with everything needed to make it without the database."""

    delivery_id: int
    attempt: int
    channel: str
    clinic_id: int
    message_id: str
    event_type: str
    event_data: dict
    event_created_at: dt.datetime
    url: str | None = None
    secret: str | None = None
    email: str | None = None
    cancelled: bool = False
    #: An email's subject and body composed at claim time (a listing digest names its
    #: listings, read from the database); None: composed from the event alone.
    text: tuple[str, str] | None = None


class Worker:
    """Delivers due deliveries until stopped: ``run(stop_event)`` or ``run_until_idle()``."""

    def __init__(self, app: Flask, name: str | None = None, concurrency: int | None = None):
        config = app.config
        self.app = app
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency or config["WORKER_CONCURRENCY"]
        self.poll = config["WORKER_POLL"]
        self.lease = dt.timedelta(seconds=config["WORKER_LEASE"])
        self.base = config["WEBHOOK_RETRY_BASE"]
        self.cap = config["WEBHOOK_RETRY_MAX"]
        self.max_attempts = config["WEBHOOK_MAX_ATTEMPTS"]
        self.base_url = config["PUBLIC_BASE_URL"]
        self.smtp = bool(config["SMTP_URL"])
        self.sender = Sender(config["WEBHOOK_TIMEOUT"],
                             production=config["REFERRAL_ENV"] == "production",
                             pool_size=self.concurrency)
        self.secret_key = config["SECRET_KEY"]
        self.daily_jobs = config["WORKER_DAILY_JOBS"]
        self.counts = {"delivered": 0, "retrying": 0, "failed": 0, "skipped": 0,
                       "cancelled": 0, "lost_lease": 0}

    # -- claiming -------------------------------------------------------------

    def claim(self, limit: int) -> list[Job]:
        """Take up to ``limit`` due deliveries for this worker (one short transaction)."""
        now = utcnow()
        claimable = and_(table.c.status == "pending", table.c.next_attempt_at <= now,
                         or_(table.c.lease_until.is_(None), table.c.lease_until < now))
        # A materialized CTE: PostgreSQL runs the locking SELECT once. (As an ``IN``
        # subquery it may run again per row, and SKIP LOCKED then yields more rows than
        # the LIMIT.)
        due = (select(table.c.id).where(claimable).order_by(table.c.next_attempt_at)
               .limit(limit).with_for_update(skip_locked=True)
               .cte("due").prefix_with("MATERIALIZED", dialect="postgresql"))
        with db.engine.begin() as connection:
            claimed = dict(connection.execute(
                update(table).where(table.c.id == due.c.id, claimable)
                .values(lease_owner=self.name, lease_until=now + self.lease,
                        attempts=table.c.attempts + 1, last_attempt_at=now)
                .returning(table.c.id, table.c.attempts)).all())
            if not claimed:
                return []
            rows = connection.execute(
                select(table.c.id, table.c.channel, table.c.clinic_id, Event.public_id,
                       Event.type, Event.data, Event.created_at, WebhookEndpoint.url,
                       WebhookEndpoint.secret_ciphertext, WebhookEndpoint.deleted_at,
                       Clinic.email)
                .join(Event, Event.id == table.c.event_id)
                .join(Clinic, Clinic.id == table.c.clinic_id)
                .outerjoin(WebhookEndpoint, WebhookEndpoint.id == table.c.endpoint_id)
                .where(table.c.id.in_(list(claimed)))).all()
        jobs = []
        for row in rows:
            job = Job(row.id, claimed[row.id], row.channel, row.clinic_id, row.public_id,
                      row.type, row.data, row.created_at, email=row.email)
            if row.channel == "webhook":
                job.cancelled = row.deleted_at is not None or row.url is None
                if not job.cancelled:
                    job.url = row.url
                    job.secret = encryptor(self.app).decrypt(row.secret_ciphertext)
            jobs.append(job)
        digests = [job for job in jobs if job.channel == "email"
                   and job.event_type == LISTING_REMINDER]
        if digests:  # a digest's email names its listings: read them now, not while sending
            with db.engine.connect() as connection:
                for job in digests:
                    job.text = digest_email(connection, job.event_data, self.base_url,
                                            self.secret_key)
        return jobs

    # -- one attempt (in a pool thread; no database session) ---------------------

    def attempt(self, job: Job) -> Outcome:
        """Make one attempt of a claimed delivery."""
        if job.cancelled:
            return Outcome(False, error="cancelled")
        try:
            if job.channel == "webhook":
                body = webhook_payload(job.event_type, job.event_created_at, job.event_data)
                return self.sender.post(job.url, body,
                                        signed_headers(job.secret, job.message_id, body))
            if self.smtp and not job.email:
                return Outcome(False, error="skipped: the clinic has no email address")
            subject, body = job.text or compose(job.event_type, job.event_data, self.base_url)
            with self.app.app_context():
                send_email(job.email, job.clinic_id, subject, body,
                           f"<{job.message_id}.c{job.clinic_id}@referral>")
            return Outcome(True)
        except Exception as error:  # any failure of one attempt is retried later
            return Outcome(False, error=f"{type(error).__name__}: {error}"[:200])

    # -- results ---------------------------------------------------------------

    def record(self, results: list[tuple[Job, Outcome]]) -> None:
        """Write the results back (only where the lease is still this worker's)."""
        if not results:
            return
        now = utcnow()
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # A result lost with the database server is only an attempt made again
                # (same webhook-id): no need to wait for the disk on every commit.
                connection.execute(text("SET LOCAL synchronous_commit = off"))
            for job, outcome in results:
                values = {"lease_owner": None, "lease_until": None,
                          "last_status_code": outcome.status_code,
                          "last_error": outcome.error, "last_response": outcome.response}
                if outcome.ok:
                    kind = "delivered"
                    values.update(status="delivered", delivered_at=now)
                elif job.cancelled:
                    kind = "cancelled"
                    values.update(status="cancelled")
                elif (outcome.error or "").startswith("skipped"):
                    kind = "skipped"
                    values.update(status="skipped")
                elif job.attempt >= self.max_attempts:
                    kind = "failed"
                    values.update(status="failed")
                else:
                    kind = "retrying"
                    values.update(next_attempt_at=now + dt.timedelta(
                        seconds=retry_delay(job.attempt, self.base, self.cap)))
                changed = connection.execute(
                    update(table).where(table.c.id == job.delivery_id,
                                        table.c.lease_owner == self.name,
                                        table.c.attempts == job.attempt)
                    .values(**values)).rowcount
                if not changed:
                    kind = "lost_lease"
                self.counts[kind] += 1
                if kind in ("retrying", "failed"):
                    log.info("delivery %s (%s, %s) attempt %s: %s", job.delivery_id,
                             job.channel, job.event_type, job.attempt,
                             outcome.status_code or outcome.error)

    # -- loops -----------------------------------------------------------------

    def run(self, stop: threading.Event, report_every: float = 10.0) -> None:
        """Deliver until ``stop`` is set; finish the attempts in flight; log progress."""
        executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="delivery")
        in_flight: dict[Future, Job] = {}
        next_poll = 0.0
        next_report = time.monotonic() + report_every
        next_daily = 0.0
        daily: threading.Thread | None = None
        log.info("delivery worker %s started (%s at a time)", self.name, self.concurrency)
        with self.app.app_context():
            try:
                while not stop.is_set() or in_flight:
                    now = time.monotonic()
                    if (self.daily_jobs and not stop.is_set() and now >= next_daily
                            and (daily is None or not daily.is_alive())):
                        next_daily = now + DAILY_CHECK_SECONDS
                        daily = threading.Thread(target=self._daily_jobs_safely, daemon=True,
                                                 name="daily-jobs")
                        daily.start()
                    free = self.concurrency - len(in_flight)
                    # claim in batches: when half the slots are free, or nothing is in flight
                    batch = free >= max(1, self.concurrency // 2) or not in_flight
                    if not stop.is_set() and free > 0 and now >= next_poll and batch:
                        jobs = self._claim_safely(free)
                        for job in jobs:
                            in_flight[executor.submit(self.attempt, job)] = job
                        next_poll = now if len(jobs) == free else now + self.poll
                    if in_flight:
                        timeout = self.poll if free <= 0 else max(0.0, next_poll - now)
                        done, _ = wait(list(in_flight), timeout=max(timeout, 0.001),
                                       return_when=FIRST_COMPLETED)
                        if done and len(done) < len(in_flight):  # gather a few more
                            more, _ = wait([f for f in in_flight if f not in done],
                                           timeout=0.005, return_when=FIRST_COMPLETED)
                            done |= more
                        self._record_safely([(in_flight.pop(f), f.result()) for f in done])
                    else:
                        stop.wait(max(0.0, next_poll - time.monotonic()))
                    if time.monotonic() >= next_report:
                        next_report = time.monotonic() + report_every
                        self.report()
            finally:
                executor.shutdown(wait=True)
                if daily is not None:
                    daily.join()  # a daily job in the middle of a clinic finishes it
                self.sender.close()
                self.report()
                log.info("delivery worker %s stopped", self.name)

    def report(self) -> None:
        """Log the counts so far and how many deliveries are waiting."""
        try:
            waiting = db.session.scalar(select(func.count()).select_from(table)
                                        .where(table.c.status == "pending"))
            db.session.remove()
        except DBAPIError:
            waiting = "?"
        log.info("worker %s: %s; %s pending", self.name,
                 ", ".join(f"{k} {v}" for k, v in self.counts.items() if v) or "nothing yet",
                 waiting)

    def _daily_jobs_safely(self) -> None:
        """Run today's daily jobs if no worker has, and fold the health tally (in its own
        thread and app context, so that deliveries go on meanwhile)."""
        with self.app.app_context():
            try:
                run_daily_jobs(self.name)
            except DBAPIError as error:  # the database is away: the next check tries again
                log.warning("daily jobs not run: %s", type(error.orig).__name__)
            finally:
                db.session.remove()
            try:  # the health tally, at every check (a minute's changes: milliseconds)
                health_tally.fold(*health_tally.windows())
            except DBAPIError as error:  # held too long by writers, or away: next check
                log.warning("health tally not folded: %s", type(error.orig).__name__)
            finally:
                db.session.remove()

    def _claim_safely(self, limit: int) -> list[Job]:
        try:
            return self.claim(limit)
        except DBAPIError as error:  # the database is away: try again at the next poll
            log.warning("claiming deliveries failed: %s", type(error.orig).__name__)
            return []

    def _record_safely(self, results) -> None:
        try:
            self.record(results)
        except DBAPIError as error:  # leases run out; the attempts are made again
            log.warning("recording %s results failed: %s", len(results),
                        type(error.orig).__name__)

    def run_until_idle(self, timeout: float = 30.0, settle: float = 0.0) -> None:
        """Deliver what is due, then retries as they fall due, until nothing is pending
        (tests, benchmarks, one-off runs); raise ``TimeoutError`` after ``timeout``."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        try:
            with self.app.app_context():
                while time.monotonic() < deadline:
                    pending = db.session.scalar(select(func.count()).select_from(table)
                                                .where(table.c.status == "pending"))
                    db.session.remove()
                    if not pending:
                        time.sleep(settle)
                        return
                    time.sleep(0.05)
            raise TimeoutError("deliveries still pending")
        finally:
            stop.set()
            thread.join(timeout=30)


def start_in_process_worker(app: Flask) -> threading.Event:
    """Run a worker thread inside this process (``IN_PROCESS_WORKER``); return its stop."""
    stop = threading.Event()
    threading.Thread(target=Worker(app).run, args=(stop,), daemon=True,
                     name="delivery-worker").start()
    return stop
