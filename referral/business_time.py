"""Business time: Monday to Friday, whole days, in UTC, once for Python and once for SQL.

"Two business days" counts only weekday time: a referral sent on Friday at 10:00 has had
14 hours by Monday 00:00 and is two business days old on Tuesday at 10:00; one sent on
Saturday has had none until Monday and is two business days old on Wednesday at 00:00.
Days are UTC days (the directory spans every US time zone, and a clinic's own zone is not
recorded); public holidays are not known and count as business days.

The rule is a clock that only runs on weekdays: ``business_clock(t)`` is the business time
from an origin (the Monday before the Unix epoch) to ``t``, so the business time between two
moments is the difference of their clocks. ``business_clock_sql`` is the same arithmetic as
a SQL expression (PostgreSQL and SQLite), so the database computes it over many rows.
"""

from __future__ import annotations

import datetime as dt
import math

from sqlalchemy import Float, Integer, case
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

DAY = 86400
WEEK = 5 * DAY  # business seconds in a week
#: The Unix epoch (day 0) was a Thursday: day + 3 counts days from the Monday before.
_MONDAY_OFFSET = 3


def business_clock(moment: dt.datetime) -> float:
    """Business seconds from the origin to ``moment`` (a timezone-aware time)."""
    seconds = moment.timestamp()
    days = math.floor(seconds / DAY)
    weeks, weekday = divmod(days + _MONDAY_OFFSET, 7)
    return weeks * WEEK + (weekday * DAY + (seconds - days * DAY) if weekday < 5 else WEEK)


def business_seconds(start: dt.datetime, end: dt.datetime) -> float:
    """Weekday (UTC) seconds between ``start`` and ``end``."""
    return business_clock(end) - business_clock(start)


class epoch_seconds(FunctionElement):  # noqa: N801 - a SQL function's name
    """Seconds since the Unix epoch of a timestamp column."""

    type = Float()
    inherit_cache = True


@compiles(epoch_seconds)
def _epoch_default(element, compiler, **kw):
    # as float: PostgreSQL's EXTRACT gives numeric, much slower to compute with
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS FLOAT)"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element, compiler, **kw):
    # UTCDateTime stores UTC text on SQLite; julianday() reads it (fractions included)
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


class whole_days(FunctionElement):  # noqa: N801 - a SQL function's name
    """``floor(seconds / 86400)`` as an integer, for seconds after the epoch."""

    type = Integer()
    inherit_cache = True


@compiles(whole_days)
def _days_default(element, compiler, **kw):
    return f"CAST(FLOOR(({compiler.process(element.clauses, **kw)}) / 86400.0) AS BIGINT)"


@compiles(whole_days, "sqlite")
def _days_sqlite(element, compiler, **kw):
    # CAST truncates, which is the floor for the positive values it gets here
    return f"CAST(({compiler.process(element.clauses, **kw)}) / 86400.0 AS INTEGER)"


def business_clock_sql(column):
    """``business_clock`` of a timestamp column, as a SQL expression."""
    seconds = epoch_seconds(column)
    days = whole_days(seconds)
    weeks = (days + _MONDAY_OFFSET) // 7
    weekday = (days + _MONDAY_OFFSET) % 7
    return weeks * WEEK + case((weekday < 5, weekday * DAY + (seconds - days * DAY)),
                               else_=WEEK)
