"""Directory health: how current the directory's listings are and how quickly referrals
are answered, overall, by state and by clinic, computed by the database (aggregate SQL;
no listing is loaded into Python), for the operators' page and API and, overall, for the
public promise on ``/about/accuracy``. The listing figures are sums of the health tally
the database keeps current (``referral.health_tally``: about one row per state and
clinic), never a pass over every listing; the referral figures aggregate the 90-day
window of referrals.

What counts:

- **Listings**: active listings kept by a clinic (the ones patient search may show;
  unclaimed registry records are not listings yet). *Verified*: confirmed by their clinic
  within ``STALE_AFTER_DAYS`` (90); *stale*: the others (never verified included);
  *hidden*: not verified within ``HIDDEN_AFTER_DAYS`` (365) or never, so search hides
  them (a part of the stale ones); *reported*: ``reported_at`` set (patients' reports);
  *open reports*: patients' reports of these listings not yet resolved; *accepting*:
  taking new patients. By state means the listing's practice state.
- **Referrals**: those sent in the last ``REFERRAL_WINDOW_DAYS`` (90) days, by the
  patient's state (where the patient is to be seen) and the receiving clinic. *Median
  answer time*: hours from sending to the answer (accepted or declined), over answered
  referrals. *Answered within
  2 business days*: answered within two business days (Monday to Friday, UTC:
  ``referral.business_time``, the same rule as the reminders) among the referrals due an
  answer: answered ones, expired ones, and ones still waiting after two business days.
  Referrals cancelled by their sender before an answer, and ones still waiting within two
  business days, have no verdict yet and are left out.
- **Verification age**: active listings by days since their clinic last verified them, in
  30-day buckets (the last one: 360 days or more), and those never verified.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import (
    and_,
    case,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    union_all,
)

from . import health_tally
from .business_time import DAY, business_clock, business_clock_sql, epoch_seconds
from .extensions import db
from .models import Clinic, Referral, utcnow
from .reminders import ANSWER_WITHIN_BUSINESS_DAYS

REFERRAL_WINDOW_DAYS = 90
BUCKET_DAYS = 30
#: Buckets of verification age: 0-29 days, 30-59, ..., and the last one, 360 or more.
BUCKETS = 13
LISTING_COUNTS = ("listings", "verified", "hidden", "reported", "accepting_new_patients")
REFERRAL_COUNTS = ("sent", "answered", "due", "answered_in_time")


@dataclass(frozen=True)
class Moment:
    """The moment the figures are computed at, with the directory's rules."""

    now: dt.datetime
    stale_after_days: int
    hidden_after_days: int

    @classmethod
    def current(cls) -> Moment:
        """Now, with the app's settings."""
        config = current_app.config
        return cls(utcnow(), config["STALE_AFTER_DAYS"], config["HIDDEN_AFTER_DAYS"])

    def days_ago(self, days: int) -> dt.datetime:
        """The moment ``days`` before now."""
        return self.now - dt.timedelta(days=days)


def _count_if(condition):
    """``count(*) FILTER (WHERE condition)``: far cheaper per row than summing a CASE."""
    return func.count().filter(condition)


def _postgresql() -> bool:
    """Whether the database is PostgreSQL; if so, give this transaction's aggregates room
    (hash tables and sorts in memory, not on disk) and no JIT (its compile time costs more
    than it saves on these statements)."""
    if db.engine.dialect.name != "postgresql":
        return False
    db.session.execute(text("SET LOCAL work_mem = '64MB'"))
    db.session.execute(text("SET LOCAL jit = off"))
    return True


def _tally(moment: Moment, build) -> list:
    """The rows of ``build(rows)`` over the health tally's count rows at the moment."""
    return health_tally.read(build, moment.now, moment.stale_after_days,
                             moment.hidden_after_days)


def _counts(row) -> dict:
    """The listing figures of one group from its tally counts."""
    return {"listings": int(row["listings"]), "verified": int(row["verified"]),
            "hidden": int(row["listings"]) - int(row["shown"]),
            "reported": int(row["reported"]),
            "accepting_new_patients": int(row["accepting_new_patients"]),
            "open_reports": int(row["open_reports"])}


def _listing_groups(moment: Moment) -> dict:
    """The listing figures overall, by state and by verification-age bucket:
    ``{"overall": {None: counts}, "state": {state: counts}, "age": {bucket: counts}}``,
    from the health tally summed by state (about 50 groups; ``referral.health_tally``)."""
    def by_state(rows):
        return (health_tally.summed(rows, rows.c.state).group_by(rows.c.state)
                .having(func.sum(rows.c.listings) > 0))

    rows = _tally(moment, by_state)
    found: dict = {"overall": {}, "state": {}, "age": {}}
    for row in rows:
        found["state"][row["state"] or None] = _counts(row)
    total = {name: sum(int(row[name]) for row in rows) for name in health_tally.COUNTS}
    if total["listings"]:
        found["overall"][None] = _counts(total)
        # newer_than[k]: verified less than k x 30 days ago; a bucket is the difference
        newer_than = [0] + [total[f"newer_{k}"] for k in range(1, BUCKETS)]
        verified = total["listings"] - total["never_verified"]
        found["age"] = {index: {"listings": (newer_than[index + 1] if index < BUCKETS - 1
                                             else verified) - newer_than[index]}
                        for index in range(BUCKETS)}
        found["age"][-1] = {"listings": total["never_verified"]}
    return found


def _clinic_page(moment: Moment, page: int, per_page: int) -> tuple[list, int | None]:
    """One page of clinics by their listing figures, the least verified first (then by
    id): ``([(clinic_id, counts)], total clinics)`` (total None past the last page),
    from the health tally summed by clinic."""
    def ranked(rows):
        listings, verified = func.sum(rows.c.listings), func.sum(rows.c.verified)
        return (health_tally.summed(rows, rows.c.clinic_id)
                .add_columns(func.count().over().label("total"))
                .group_by(rows.c.clinic_id).having(listings > 0)
                .order_by(verified * 1.0 / listings, rows.c.clinic_id)
                .limit(per_page).offset((page - 1) * per_page))

    rows = _tally(moment, ranked)
    shown = [(row["clinic_id"], _counts(row)) for row in rows]
    return shown, (rows[0]["total"] if rows else None)


def _referral_groups(moment: Moment, by: str | None = None, clinic_ids=None) -> dict:
    """The referral figures: ``{key: counts and "median_answer_hours"}`` of the whole
    directory and each patient state (``by`` None: both, in one statement on PostgreSQL)
    or of the given receiving clinics (``by="clinic"``).

    The median is PostgreSQL's ``percentile_cont``; SQLite has none, so there it is the
    middle row (or the mean of the two) by window functions.
    """
    limit = ANSWER_WITHIN_BUSINESS_DAYS * DAY
    answered = Referral.responded_at.is_not(None)
    waited = literal(business_clock(moment.now)) - business_clock_sql(Referral.created_at)
    took = business_clock_sql(Referral.responded_at) - business_clock_sql(Referral.created_at)
    due = or_(answered, Referral.status == "expired",
              and_(Referral.status == "requested", waited >= limit))
    seconds = epoch_seconds(Referral.responded_at) - epoch_seconds(Referral.created_at)
    window = Referral.created_at >= moment.days_ago(REFERRAL_WINDOW_DAYS)
    counts = [func.count().label("sent"), _count_if(answered).label("answered"),
              _count_if(due).label("due"),
              _count_if(and_(answered, took <= limit)).label("answered_in_time")]
    if by == "clinic":
        keys = [(Referral.receiver_clinic_id, "clinic")]
        where = and_(window, Referral.receiver_clinic_id.in_(clinic_ids))
    else:
        keys = [(None, "overall"), (Referral.patient_state, "state")]
        where = window
    found = {name: {} for _, name in keys}
    if _postgresql():
        median = func.percentile_cont(0.5).within_group(seconds).filter(answered)
        if by == "clinic":
            statement = (select(literal("clinic").label("kind"),
                                Referral.receiver_clinic_id.label("key"), *counts,
                                median.label("median")).where(where)
                         .group_by(Referral.receiver_clinic_id))
        else:
            kind = case((func.grouping(Referral.patient_state) == 1, "overall"),
                        else_="state")
            statement = (select(kind.label("kind"), Referral.patient_state.label("key"),
                                *counts, median.label("median")).where(where)
                         .group_by(func.grouping_sets(literal_column("()"),
                                                      Referral.patient_state)))
        rows = list(db.session.execute(statement).mappings())
        medians = {(row["kind"], row["key"]): row["median"] for row in rows}
    else:
        parts = [select(literal(name).label("kind"),
                        (column if column is not None else null()).label("key"), *counts)
                 .where(where).group_by(*([column] if column is not None else []))
                 for column, name in keys]
        rows = list(db.session.execute(union_all(*parts)).mappings())
        medians = {}
        for column, name in keys:
            partition = {"partition_by": column} if column is not None else {}
            ordered = (select(seconds.label("seconds"),
                              (column if column is not None else null()).label("key"),
                              func.row_number().over(order_by=seconds, **partition)
                              .label("position"),
                              func.count().over(**partition).label("n"))
                       .where(where, answered).subquery())
            middle = or_(ordered.c.position == (ordered.c.n + 1) // 2,
                         ordered.c.position == (ordered.c.n + 2) // 2)
            for key, value in db.session.execute(
                    select(ordered.c.key, func.avg(ordered.c.seconds))
                    .where(middle).group_by(ordered.c.key)):
                medians[(name, key)] = value
    for row in rows:
        entry = {name: int(row[name]) for name in REFERRAL_COUNTS}
        value = medians.get((row["kind"], row["key"]))
        entry["median_answer_hours"] = (round(float(value) / 3600, 1)
                                        if value is not None else None)
        found[row["kind"]][row["key"]] = entry
    return found


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(listing: dict | None, referral: dict | None) -> dict:
    """One group's figures: counts and shares of listings, and the referral figures."""
    listing = {**dict.fromkeys(LISTING_COUNTS, 0), "open_reports": 0, **(listing or {})}
    referral = {**dict.fromkeys(REFERRAL_COUNTS, 0), **(referral or {})}
    total = listing["listings"]
    stale = total - listing["verified"]
    return {
        "listings": total,
        "verified": listing["verified"], "verified_share": _share(listing["verified"], total),
        "stale": stale, "stale_share": _share(stale, total),
        "hidden": listing["hidden"], "hidden_share": _share(listing["hidden"], total),
        "reported": listing["reported"], "reported_share": _share(listing["reported"], total),
        "open_reports": listing["open_reports"],
        "accepting_new_patients": listing["accepting_new_patients"],
        "accepting_new_patients_share": _share(listing["accepting_new_patients"], total),
        "referrals": {
            "sent": referral["sent"], "answered": referral["answered"],
            "median_answer_hours": referral.get("median_answer_hours"),
            "due_an_answer": referral["due"],
            "answered_within_2_business_days": referral["answered_in_time"],
            "answered_within_2_business_days_share": _share(referral["answered_in_time"],
                                                            referral["due"]),
        },
    }


def overall(moment: Moment | None = None) -> dict:
    """The whole directory's figures (the public page)."""
    moment = moment or Moment.current()
    return figures(_listing_groups(moment)["overall"].get(None),
                   _referral_groups(moment)["overall"].get(None))


def _states(listings: dict, referrals: dict) -> list[dict]:
    return [{"state": state, **figures(listings.get(state), referrals.get(state))}
            for state in sorted(set(listings) | set(referrals), key=lambda s: (s is None, s))]


def _ages(counts: dict) -> dict:
    buckets = [{"from_days": index * BUCKET_DAYS,
                "to_days": (index + 1) * BUCKET_DAYS - 1 if index < BUCKETS - 1 else None,
                "listings": counts.get(index, {}).get("listings", 0)}
               for index in range(BUCKETS)]
    return {"buckets": buckets, "never_verified": counts.get(-1, {}).get("listings", 0)}


def by_state(moment: Moment | None = None) -> list[dict]:
    """Each practice state's figures, by state code (listings without a state: ``None``
    last); referrals by the patient's state."""
    moment = moment or Moment.current()
    return _states(_listing_groups(moment)["state"], _referral_groups(moment)["state"])


def by_clinic(page: int, per_page: int, moment: Moment | None = None) -> dict:
    """One page of clinics with their figures, the least verified first (then by id):
    ``{"items", "total", "page", "per_page"}``."""
    moment = moment or Moment.current()
    shown, total = _clinic_page(moment, page, per_page)
    ids = [clinic_id for clinic_id, _ in shown]
    names = dict(db.session.execute(select(Clinic.id, Clinic.name)
                                    .where(Clinic.id.in_(ids))).all())
    referrals = _referral_groups(moment, "clinic", ids)["clinic"] if ids else {}
    if total is None:  # a page past the last one
        total = _clinic_page(moment, 1, 1)[1] or 0
    items = [{"clinic": {"id": clinic_id, "name": names.get(clinic_id)},
              **figures(counts, referrals.get(clinic_id))} for clinic_id, counts in shown]
    return {"items": items, "total": total, "page": page, "per_page": per_page}


def verification_age(moment: Moment | None = None) -> dict:
    """``{"buckets": [{"from_days", "to_days", "listings"}], "never_verified": n}`` of the
    active listings kept by clinics (``to_days`` None: the open last bucket)."""
    moment = moment or Moment.current()
    return _ages(_listing_groups(moment)["age"])


def directory_health(page: int = 1, per_page: int = 50, moment: Moment | None = None) -> dict:
    """Everything the operators see (overall, by state, a page of clinics, verification
    age, and the moment and rules they were computed with)."""
    moment = moment or Moment.current()
    listings = _listing_groups(moment)
    referrals = _referral_groups(moment)
    return {"as_of": moment.now, "stale_after_days": moment.stale_after_days,
            "hidden_after_days": moment.hidden_after_days,
            "referral_window_days": REFERRAL_WINDOW_DAYS,
            "overall": figures(listings["overall"].get(None), referrals["overall"].get(None)),
            "by_state": _states(listings["state"], referrals["state"]),
            "by_clinic": by_clinic(page, per_page, moment),
            "verification_age": _ages(listings["age"])}
