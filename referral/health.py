"""Directory health: how current the directory's listings are and how quickly referrals
are answered, overall, by state and by clinic, computed by the database (aggregate SQL;
no listing is loaded into Python), for the operators' page and API and, overall, for the
public promise on ``/about/accuracy``.

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
from sqlalchemy import and_, case, func, literal, or_, select

from .business_time import DAY, business_clock, business_clock_sql, epoch_seconds, whole_days
from .extensions import db
from .models import Clinic, ListingReport, Provider, Referral, utcnow
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


def _listed():
    """SQL condition: an active listing kept by a clinic."""
    return and_(Provider.active.is_(True), Provider.clinic_id.is_not(None))


def _count_if(condition):
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _verified(moment: Moment):
    """SQL condition: verified within ``stale_after_days``."""
    return Provider.last_verified_at >= moment.days_ago(moment.stale_after_days)


def _listing_columns(moment: Moment) -> list:
    verified_at = Provider.last_verified_at
    return [func.count().label("listings"), _count_if(_verified(moment)).label("verified"),
            _count_if(or_(verified_at.is_(None),
                          verified_at < moment.days_ago(moment.hidden_after_days))
                      ).label("hidden"),
            _count_if(Provider.reported_at.is_not(None)).label("reported"),
            _count_if(Provider.accepting_new_patients.is_(True)).label("accepting_new_patients")]


def _grouped(query, key):
    """``query`` with ``key`` as its first column and grouped by it (None: one row)."""
    if key is None:
        return query
    return query.add_columns(key.label("key")).group_by(key)


def _listing_rows(moment: Moment, key=None, where=None) -> dict:
    """``{key: {count: n}}`` of the listing counts (key None: the whole directory)."""
    query = select(*_listing_columns(moment)).where(_listed())
    if where is not None:
        query = query.where(where)
    rows = db.session.execute(_grouped(query, key)).mappings()
    found = {row.get("key"): {name: int(row[name]) for name in LISTING_COUNTS} for row in rows}
    reports = select(func.count().label("open_reports")).select_from(ListingReport).join(
        Provider, Provider.id == ListingReport.provider_id).where(
        _listed(), ListingReport.status == "open")
    if where is not None:
        reports = reports.where(where)
    for row in db.session.execute(_grouped(reports, key)).mappings():
        if row.get("key") in found:
            found[row.get("key")]["open_reports"] = int(row["open_reports"])
    return found


def _referral_key(key_name: str | None):
    return {None: None, "state": Referral.patient_state,
            "clinic": Referral.receiver_clinic_id}[key_name]


def _referral_rows(moment: Moment, key_name: str | None = None, where=None) -> dict:
    """``{key: {count: n, "median_answer_hours": h}}`` of the referral figures."""
    key = _referral_key(key_name)
    limit = ANSWER_WITHIN_BUSINESS_DAYS * DAY
    answered = Referral.responded_at.is_not(None)
    waited = literal(business_clock(moment.now)) - business_clock_sql(Referral.created_at)
    took = business_clock_sql(Referral.responded_at) - business_clock_sql(Referral.created_at)
    due = or_(answered, Referral.status == "expired",
              and_(Referral.status == "requested", waited >= limit))
    base = (select().select_from(Referral)
            .where(Referral.created_at >= moment.days_ago(REFERRAL_WINDOW_DAYS)))
    if where is not None:
        base = base.where(where)
    counts = base.add_columns(func.count().label("sent"), _count_if(answered).label("answered"),
                              _count_if(due).label("due"),
                              _count_if(and_(answered, took <= limit)).label("answered_in_time"))
    found = {row.get("key"): {name: int(row[name]) for name in REFERRAL_COUNTS}
             for row in db.session.execute(_grouped(counts, key)).mappings()}
    # The median by window functions (PostgreSQL and SQLite alike): the middle row, or
    # the mean of the two middle rows, of each group's answer times in order.
    seconds = epoch_seconds(Referral.responded_at) - epoch_seconds(Referral.created_at)
    partition = {"partition_by": key} if key is not None else {}
    ordered = base.where(answered).add_columns(
        seconds.label("seconds"),
        func.row_number().over(order_by=seconds, **partition).label("position"),
        func.count().over(**partition).label("n"))
    if key is not None:
        ordered = ordered.add_columns(key.label("key"))
    ordered = ordered.subquery()
    middle = or_(ordered.c.position == (ordered.c.n + 1) // 2,
                 ordered.c.position == (ordered.c.n + 2) // 2)
    median = select(func.avg(ordered.c.seconds).label("median")).where(middle)
    if key is not None:
        median = median.add_columns(ordered.c.key.label("key")).group_by(ordered.c.key)
    for row in db.session.execute(median).mappings():
        if row.get("key") in found and row["median"] is not None:
            found[row.get("key")]["median_answer_hours"] = round(float(row["median"]) / 3600, 1)
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
    """The whole directory's figures."""
    moment = moment or Moment.current()
    return figures(_listing_rows(moment).get(None), _referral_rows(moment).get(None))


def by_state(moment: Moment | None = None) -> list[dict]:
    """Each practice state's figures, by state code (listings without a state: ``None``
    last)."""
    moment = moment or Moment.current()
    listings = _listing_rows(moment, Provider.state)
    referrals = _referral_rows(moment, "state")
    return [{"state": state, **figures(listings.get(state), referrals.get(state))}
            for state in sorted(set(listings) | set(referrals), key=lambda s: (s is None, s))]


def by_clinic(page: int, per_page: int, moment: Moment | None = None) -> dict:
    """One page of clinics with their figures, the least verified first (then by id):
    ``{"items", "total", "page", "per_page"}``."""
    moment = moment or Moment.current()
    verified_share = _count_if(_verified(moment)) * 1.0 / func.count()
    ranked = (select(Provider.clinic_id, func.count().over().label("total"))
              .where(_listed()).group_by(Provider.clinic_id)
              .order_by(verified_share, Provider.clinic_id)
              .limit(per_page).offset((page - 1) * per_page)).subquery()
    shown = db.session.execute(select(ranked.c.clinic_id, Clinic.name, ranked.c.total)
                               .join(Clinic, Clinic.id == ranked.c.clinic_id)).all()
    total = shown[0].total if shown else _clinic_count()
    ids = [row.clinic_id for row in shown]
    listings = _listing_rows(moment, Provider.clinic_id, Provider.clinic_id.in_(ids))
    referrals = _referral_rows(moment, "clinic", Referral.receiver_clinic_id.in_(ids))
    items = [{"clinic": {"id": clinic_id, "name": name},
              **figures(listings.get(clinic_id), referrals.get(clinic_id))}
             for clinic_id, name, _ in shown]
    items.sort(key=lambda item: ids.index(item["clinic"]["id"]))  # the ranking's order
    return {"items": items, "total": total, "page": page, "per_page": per_page}


def _clinic_count() -> int:
    """How many clinics keep listings (for a page past the last one)."""
    return db.session.scalar(select(func.count(func.distinct(Provider.clinic_id)))
                             .where(_listed()))


def verification_age(moment: Moment | None = None) -> dict:
    """``{"buckets": [{"from_days", "to_days", "listings"}], "never_verified": n}`` of the
    active listings kept by clinics (``to_days`` None: the open last bucket)."""
    moment = moment or Moment.current()
    age_days = whole_days(literal(moment.now.timestamp()) - epoch_seconds(
        Provider.last_verified_at))
    bucket = case((Provider.last_verified_at.is_(None), -1), (age_days < 0, 0),
                  (age_days >= (BUCKETS - 1) * BUCKET_DAYS, BUCKETS - 1),
                  else_=age_days // BUCKET_DAYS)  # -1: never verified
    counts = dict(db.session.execute(
        select(bucket.label("bucket"), func.count()).where(_listed()).group_by(bucket)).all())
    never = counts.get(-1, 0)
    buckets = [{"from_days": index * BUCKET_DAYS,
                "to_days": (index + 1) * BUCKET_DAYS - 1 if index < BUCKETS - 1 else None,
                "listings": int(counts.get(index, 0))} for index in range(BUCKETS)]
    return {"buckets": buckets, "never_verified": int(never)}


def directory_health(page: int = 1, per_page: int = 50, moment: Moment | None = None) -> dict:
    """Everything the operators see: overall, by state, a page of clinics, verification
    age, and the moment and rules they were computed with."""
    moment = moment or Moment.current()
    return {"as_of": moment.now, "stale_after_days": moment.stale_after_days,
            "hidden_after_days": moment.hidden_after_days,
            "referral_window_days": REFERRAL_WINDOW_DAYS,
            "overall": overall(moment), "by_state": by_state(moment),
            "by_clinic": by_clinic(page, per_page, moment),
            "verification_age": verification_age(moment)}
