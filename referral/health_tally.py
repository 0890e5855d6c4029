"""The health tally: the directory-health counts of the listings kept by clinics, per
practice state and clinic, kept current by the database, so that the figures of
``referral.health`` never read every listing.

Three tables (``referral.models``, migration 0011):

- ``health_tally``: per (state, clinic) the plain counts (``TALLY_COUNTS``: listings,
  reported, taking new patients, never verified, open patient reports, which a trigger on
  ``listing_report`` keeps on each listing as ``provider.open_reports``) and the counts
  of listings verified since a line of age (``TALLY_SINCE``: within the stale window,
  within the hidden window, newer than each 30-day line of the age chart), all counted
  at the clock's ``as_of``;
- ``health_tally_change``: written by triggers on ``provider`` in the writer's own
  transaction: -1 with the old values when a listing leaves a group (or stops being
  listed), +1 with the new ones when it enters one. Insert-only, so writers never wait
  for each other here;
- ``health_tally_clock``: one row: ``as_of``, a ``generation`` bumped by every fold, and the
  stale and hidden windows the counts were made with.

The counts now, at ``now``, for any group, are exact without folding anything:

    count = tally + the changes counted at the clock's lines
                  - the listings (as they are now) whose verification crossed a line
                    between ``as_of`` and ``now``

because the tally plus the changes is the listings as they are now, counted at the old
lines, and moving a line from ``as_of - d`` to ``now - d`` loses exactly the listings
verified between the two (or gains them, if ``now`` is earlier, as on a node whose clock
is behind). The last part reads a range of ``ix_provider_listed_verified``: about a day of
verifications per line when the tally is folded daily, minutes' worth when the worker
folds it every minute.

**Folding** (``fold``, run by the delivery workers every ``HEALTH_FOLD_SECONDS`` and by
``referral health fold``) adds that same difference into the tally at ``as_of = now`` and
deletes the changes it counted, in one transaction that holds the change table against new
changes (PostgreSQL: ``LOCK TABLE``, waiting at most 5 s; SQLite: the write lock), so no
change is counted twice or missed. A reader that finds a new ``generation`` after its
statement reads again. ``rebuild`` counts the tally again from the listings (after a
change of the stale or hidden window, or to repair); ``check`` compares the tally with
such a recount.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import (
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from .extensions import db
from .models import (
    TALLY_COUNTS,
    TALLY_SINCE,
    Provider,
    health_tally,
    health_tally_change,
    health_tally_clock,
    utcnow,
)

#: Every count the tally keeps, in column order.
COUNTS = (*TALLY_COUNTS, *TALLY_SINCE)
#: Where no fold has run yet: the tally is empty and every listing is a change.
NEVER = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: How long a fold waits for writers holding the change table (PostgreSQL).
FOLD_LOCK_TIMEOUT = "5s"
BUCKET_DAYS = 30
#: Reads of the tally a fold may spoil before a reader recounts the listings instead.
READ_TRIES = 3


@dataclass(frozen=True)
class Line:
    """A line of verification age: a listing counts in ``name`` when it was verified at or
    after (``strict``: after) ``days`` days before the moment counted at."""

    name: str
    days: int
    strict: bool

    def newer(self, column, moment: dt.datetime):
        """SQL: ``column`` is on the counted side of this line at ``moment``."""
        at = moment - dt.timedelta(days=self.days)
        return column > at if self.strict else column >= at

    def crossed(self, column, before: dt.datetime, after: dt.datetime):
        """SQL: ``column`` is on the counted side of the line at the earlier of the two
        moments and not at the later one."""
        early, late = sorted((before, after))
        return and_(self.newer(column, early), ~self.newer(column, late))


def lines(stale_after_days: int, hidden_after_days: int) -> list[Line]:
    """The lines of ``TALLY_SINCE``, in its order: verified within the stale window,
    shown (within the hidden window), and newer than 30, 60, ..., 360 days."""
    return [Line("verified", stale_after_days, False), Line("shown", hidden_after_days, False),
            *[Line(f"newer_{k}", k * BUCKET_DAYS, True) for k in range(1, 13)]]


@dataclass(frozen=True)
class Clock:
    """The tally's clock row: the moment its counts are at, the fold that made it, and the
    windows its lines were drawn with."""

    as_of: dt.datetime
    generation: int
    stale_after_days: int
    hidden_after_days: int


def windows() -> tuple[int, int]:
    """The app's stale and hidden windows in days (``STALE_AFTER_DAYS``,
    ``HIDDEN_AFTER_DAYS``)."""
    config = current_app.config
    return config["STALE_AFTER_DAYS"], config["HIDDEN_AFTER_DAYS"]


def read_clock(stale_after_days: int, hidden_after_days: int) -> Clock:
    """The clock; before the first fold, an empty tally at ``NEVER`` with the given windows."""
    row = db.session.execute(select(health_tally_clock).where(
        health_tally_clock.c.id == 1)).mappings().first()
    if row is None:
        return Clock(NEVER, 0, stale_after_days, hidden_after_days)
    return Clock(row["as_of"], row["generation"], row["stale_after_days"],
                 row["hidden_after_days"])


def state_key(column):
    """SQL: the state of a group, '' for none (an inline literal, so that the same
    expression can be grouped by)."""
    return func.coalesce(column, literal_column("''"))


def _counted(condition, weight):
    return case((condition, weight), else_=0)


def _changes(clock: Clock):
    """The change rows as counts at the clock's lines (one row per change)."""
    change = health_tally_change.c
    weight = change.delta
    return select(
        state_key(change.state).label("state"), change.clinic_id,
        weight.label("listings"), _counted(change.reported, weight).label("reported"),
        _counted(change.accepting_new_patients, weight).label("accepting_new_patients"),
        _counted(change.last_verified_at.is_(None), weight).label("never_verified"),
        (change.open_reports * weight).label("open_reports"),
        *[_counted(line.newer(change.last_verified_at, clock.as_of), weight).label(line.name)
          for line in lines(clock.stale_after_days, clock.hidden_after_days)])


def _crossings(clock: Clock, now: dt.datetime) -> list:
    """Per line, the listings as they are now whose verification crossed it between the
    clock's ``as_of`` and ``now``: -1 each (+1 when ``now`` is the earlier)."""
    if now == clock.as_of:
        return []
    sign = -1 if now > clock.as_of else 1
    drawn = lines(clock.stale_after_days, clock.hidden_after_days)
    parts = []
    for line in drawn:
        parts.append(select(
            state_key(Provider.state).label("state"), Provider.clinic_id,
            *[literal(0).label(name) for name in TALLY_COUNTS],
            *[literal(sign if other is line else 0).label(other.name) for other in drawn])
            .where(Provider.listed, line.crossed(Provider.last_verified_at, clock.as_of, now)))
    return parts


def _kept():
    return select(health_tally.c.state, health_tally.c.clinic_id,
                  *[health_tally.c[name] for name in COUNTS])


def current_rows(clock: Clock, now: dt.datetime):
    """A subquery of count rows (several per group) that add up, per (state, clinic), to
    the counts at ``now``: the tally, the changes, the crossings. ``state`` is '' for
    listings without one."""
    return union_all(_kept(), _changes(clock), *_crossings(clock, now)).subquery("tally")


def counted_at(now: dt.datetime, stale_after_days: int, hidden_after_days: int):
    """A subquery of the counts per (state, clinic) recounted from the listings at ``now``
    (the whole table: what ``rebuild`` and ``check`` compare with)."""
    verified_at = Provider.last_verified_at
    return (select(
        state_key(Provider.state).label("state"), Provider.clinic_id,
        func.count().label("listings"),
        func.count().filter(Provider.reported_at.is_not(None)).label("reported"),
        func.count().filter(Provider.accepting_new_patients.is_(True))
        .label("accepting_new_patients"),
        func.count().filter(verified_at.is_(None)).label("never_verified"),
        func.sum(Provider.open_reports).label("open_reports"),
        *[func.count().filter(line.newer(verified_at, now)).label(line.name)
          for line in lines(stale_after_days, hidden_after_days)])
        .where(Provider.listed).group_by(state_key(Provider.state), Provider.clinic_id)
        .subquery("recount"))


def read(build, now: dt.datetime, stale_after_days: int, hidden_after_days: int) -> list:
    """The rows (mappings) of ``build(rows)``, a statement over count rows that add up,
    per (state, clinic), to the counts at ``now``: ``current_rows`` at one generation of
    the tally (a fold that commits meanwhile makes it read again; folds are a minute or
    more apart, so once is the most it takes in practice), or the recount of the listings
    where the tally was made with other windows (until the next fold rebuilds it) or
    where folds kept committing under ``READ_TRIES`` reads."""
    for _ in range(READ_TRIES):
        clock = read_clock(stale_after_days, hidden_after_days)
        if (clock.stale_after_days, clock.hidden_after_days) != (
                stale_after_days, hidden_after_days):
            break
        rows = list(db.session.execute(build(current_rows(clock, now))).mappings())
        if read_clock(stale_after_days, hidden_after_days).generation == clock.generation:
            return rows
    return list(db.session.execute(build(counted_at(now, stale_after_days,
                                                    hidden_after_days))).mappings())


def summed(rows, *keys):
    """A statement: the counts of ``rows`` (a subquery of count rows) summed per ``keys``
    (columns of ``rows``; none: one row for all), each as an integer."""
    return select(*keys, *[func.coalesce(func.sum(rows.c[name]), 0).label(name)
                           for name in COUNTS])


def _upsert(source):
    """``INSERT INTO health_tally`` the rows of ``source`` (state, clinic and every count),
    adding them to a group's counts where it is there already."""
    dialect = db.engine.dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = make(health_tally).from_select(["state", "clinic_id", *COUNTS], source)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["state", "clinic_id"],
        set_={name: health_tally.c[name] + excluded[name] for name in COUNTS})


def _hold(stale_after_days: int, hidden_after_days: int) -> Clock:
    """Begin holding the tally: no change can be written (or fold run) until this
    transaction ends. The clock as it was."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text(f"SET LOCAL lock_timeout = '{FOLD_LOCK_TIMEOUT}'"))
        db.session.execute(text("LOCK TABLE health_tally_change IN SHARE ROW EXCLUSIVE MODE"))
    else:  # the first write takes SQLite's one write lock
        db.session.execute(update(health_tally_clock).where(health_tally_clock.c.id == 1)
                           .values(generation=health_tally_clock.c.generation))
    return read_clock(stale_after_days, hidden_after_days)


def _set_clock(clock: Clock, as_of: dt.datetime, stale_after_days: int,
               hidden_after_days: int) -> None:
    values = {"as_of": as_of, "generation": clock.generation + 1,
              "stale_after_days": stale_after_days, "hidden_after_days": hidden_after_days}
    if clock.generation == 0:
        db.session.execute(insert(health_tally_clock).values(id=1, **values))
    else:
        db.session.execute(update(health_tally_clock).where(health_tally_clock.c.id == 1)
                           .values(**values))


def fold(stale_after_days: int, hidden_after_days: int, now: dt.datetime | None = None) -> int:
    """Fold the changes into the tally at ``now`` (never earlier than the clock already
    is) and commit: how many changes it folded. Rebuilds instead when the windows are not
    the ones the tally was made with. Raises the database's error when the change table
    could not be held within 5 s (the next fold tries again)."""
    now = now or utcnow()
    try:
        clock = _hold(stale_after_days, hidden_after_days)
        if (clock.stale_after_days, clock.hidden_after_days) != (
                stale_after_days, hidden_after_days):
            db.session.rollback()
            return rebuild(stale_after_days, hidden_after_days, now)
        as_of = max(now, clock.as_of)
        folded = db.session.scalar(select(func.count()).select_from(health_tally_change))
        rows = union_all(_changes(clock), *_crossings(clock, as_of)).subquery("moved")
        grouped = summed(rows, rows.c.state, rows.c.clinic_id).where(true()).group_by(
            rows.c.state, rows.c.clinic_id)
        db.session.execute(_upsert(grouped))
        db.session.execute(delete(health_tally).where(health_tally.c.listings == 0))
        db.session.execute(delete(health_tally_change))
        _set_clock(clock, as_of, stale_after_days, hidden_after_days)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return folded


def rebuild(stale_after_days: int, hidden_after_days: int, now: dt.datetime | None = None
            ) -> int:
    """Count the tally again from the listings at ``now`` with these windows, drop the
    changes, and commit: how many groups it has."""
    now = now or utcnow()
    try:
        clock = _hold(stale_after_days, hidden_after_days)
        db.session.execute(delete(health_tally))
        db.session.execute(delete(health_tally_change))
        recount = counted_at(now, stale_after_days, hidden_after_days)
        db.session.execute(insert(health_tally).from_select(
            ["state", "clinic_id", *COUNTS],
            select(recount.c.state, recount.c.clinic_id, *[recount.c[n] for n in COUNTS])))
        _set_clock(clock, now, stale_after_days, hidden_after_days)
        groups = db.session.scalar(select(func.count()).select_from(health_tally))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return groups


def check(stale_after_days: int, hidden_after_days: int, now: dt.datetime | None = None
          ) -> list[dict]:
    """The groups whose counts from the tally differ from a recount of the listings at
    ``now`` (an empty list: the tally is right): ``{"state", "clinic_id", "tally",
    "recount"}``."""
    now = now or utcnow()

    def per_group(rows):
        return summed(rows, rows.c.state, rows.c.clinic_id).group_by(rows.c.state,
                                                                      rows.c.clinic_id)

    def as_dict(rows) -> dict:
        return {(row["state"], row["clinic_id"]): {n: int(row[n]) for n in COUNTS}
                for row in rows if any(row[n] for n in COUNTS)}

    tally = as_dict(read(per_group, now, stale_after_days, hidden_after_days))
    truth = as_dict(db.session.execute(select(counted_at(now, stale_after_days,
                                                         hidden_after_days))).mappings())
    zero = dict.fromkeys(COUNTS, 0)
    return [{"state": state or None, "clinic_id": clinic_id,
             "tally": tally.get((state, clinic_id), zero),
             "recount": truth.get((state, clinic_id), zero)}
            for state, clinic_id in sorted(set(tally) | set(truth))
            if tally.get((state, clinic_id), zero) != truth.get((state, clinic_id), zero)]
