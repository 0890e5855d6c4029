"""The daily jobs, run by the delivery workers themselves (no cron needed): expire
referrals unanswered for 14 days, then send reminders (``referral.reminders``).

Each job runs at most once per UTC day per directory, however many workers run on however
many nodes: the worker that inserts the day's ``daily_run`` row (its primary key is the
job and the day) runs the job; every other worker's insert fails and it skips. A job that
fails deletes its row, so a worker tries again at its next check. A worker killed in the
middle of a job leaves the row: that day's run is not retried, and the next day's run
catches up (the jobs cover everything due, not only what became due that day). The jobs
are themselves safe to repeat, so the CLI commands may also run at any time.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from .extensions import db
from .models import DailyRun, utcnow

log = logging.getLogger(__name__)
table = DailyRun.__table__


def _expire(now: dt.datetime) -> int:
    from .referrals import expire_referrals

    return expire_referrals(now)


def _remind(now: dt.datetime) -> int:
    from .reminders import send_reminders

    return sum(send_reminders(now))


#: The jobs in the order they run (expiry first: an expired referral needs no reminder).
JOBS = {"expire-referrals": _expire, "remind-stale": _remind}


def run_daily_jobs(worker: str, now: dt.datetime | None = None) -> dict[str, int]:
    """Run each job not yet run today (UTC) by any worker; ``{job: result}`` of those this
    call ran (an empty dict when others ran them already). Needs an app context."""
    now = now or utcnow()
    day = now.astimezone(dt.UTC).date().isoformat()
    ran = {}
    for job, run in JOBS.items():
        try:
            with db.engine.begin() as connection:
                connection.execute(insert(table).values(job=job, day=day, worker=worker[:64],
                                                        started_at=utcnow()))
        except IntegrityError:
            continue  # another worker has it today
        try:
            result = run(now)
        except Exception as error:  # give the day back, so that the next check tries again
            db.session.rollback()
            log.warning("daily job %s failed: %s", job, type(error).__name__)
            _forget(job, day)
            continue
        finally:
            db.session.remove()
        with db.engine.begin() as connection:
            connection.execute(update(table).where(table.c.job == job, table.c.day == day)
                               .values(finished_at=utcnow(), result=result))
        log.info("daily job %s: %s", job, result)
        ran[job] = result
    return ran


def _forget(job: str, day: str) -> None:
    try:
        with db.engine.begin() as connection:
            connection.execute(delete(table).where(table.c.job == job, table.c.day == day))
    except DBAPIError as error:
        log.warning("could not give back the daily job %s: %s", job, type(error.orig).__name__)
