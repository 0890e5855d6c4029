"""The health tally (``referral.health_tally``): the database keeps the counts per state
and clinic current through triggers, and a fold adds the changes in at a moving clock.
Every test compares the tally's counts with a recount of the listings themselves
(``check``), before and after folds, at moments before and after the clock, and after
writes of every kind: new listings, edits of each watched column, deactivation, deletion,
patients' reports opened and resolved."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import func, select, text, update

from referral import health, health_tally
from referral.extensions import db
from referral.models import (
    Clinic,
    ListingReport,
    Provider,
    health_tally_change,
    health_tally_clock,
)
from referral.models import health_tally as tally_table
from tests.conftest import new_npi

NOW = dt.datetime(2026, 11, 26, 15, 30, tzinfo=dt.UTC)
WINDOWS = (90, 365)
AGES = [None, 0, 5, 29, 30, 59, 89, 90, 91, 120, 200, 364, 365, 366, 500]


def listings_of(rng: random.Random, clinic_ids: list, count: int) -> list[Provider]:
    """``count`` listings (and registry records) of every state of verification."""
    made = []
    for number in range(count):
        age = rng.choice(AGES)
        made.append(Provider(
            npi=new_npi(), first_name="Tally", last_name=f"T{number}", role="therapist",
            provider_type="psychologist", state=rng.choice(["MA", "NY", "TX", None]),
            clinic_id=rng.choice([*clinic_ids, None]),
            last_verified_at=(NOW - dt.timedelta(days=age, hours=rng.random() * 23)
                              if age is not None else None),
            reported_at=NOW if rng.random() < 0.2 else None,
            accepting_new_patients=rng.random() < 0.5, active=rng.random() < 0.85))
    return made


@pytest.fixture
def directory_rows(app):
    """Three clinics with 60 listings and registry records, some reported by patients."""
    rng = random.Random(17)
    with app.app_context():
        clinics = [Clinic(name=f"Tally {n}") for n in range(3)]
        db.session.add_all(clinics)
        db.session.flush()
        ids = [c.id for c in clinics]
        providers = listings_of(rng, ids, 60)
        db.session.add_all(providers)
        db.session.flush()
        for number, provider in enumerate(rng.sample(providers, 20)):
            db.session.add(ListingReport(provider_id=provider.id, reason="other",
                                         reporter_key=f"{number:064d}",
                                         status=rng.choice(["open", "open", "resolved"])))
        db.session.commit()
        yield {"clinic_ids": ids, "provider_ids": [p.id for p in providers]}


def differences(now=NOW, windows=WINDOWS):
    return health_tally.check(*windows, now=now)


def pending() -> int:
    return db.session.scalar(select(func.count()).select_from(health_tally_change))


def test_the_counts_match_a_recount_before_any_fold_and_after_one(app, directory_rows):
    with app.app_context():
        assert pending() > 0 and differences() == []
        folded = health_tally.fold(*WINDOWS, now=NOW)
        assert folded > 0 and pending() == 0
        assert db.session.scalar(select(func.count()).select_from(tally_table)) > 0
        assert differences() == []
        # a second fold with nothing new folds nothing and changes nothing
        before = db.session.execute(select(tally_table).order_by("state", "clinic_id")).all()
        assert health_tally.fold(*WINDOWS, now=NOW) == 0
        assert db.session.execute(select(tally_table).order_by("state", "clinic_id")
                                  ).all() == before


@pytest.mark.parametrize("days", [0.5, 1, 29.9, 40, 400])
def test_time_moves_listings_across_the_lines_of_age(app, directory_rows, days):
    """Folded at NOW: the counts at a later moment (and at an earlier one, a node whose
    clock is behind) equal a recount at that moment, without folding again, and after
    folding at it."""
    later, earlier = NOW + dt.timedelta(days=days), NOW - dt.timedelta(days=days)
    with app.app_context():
        health_tally.fold(*WINDOWS, now=NOW)
        assert differences(later) == [] and differences(earlier) == []
        health_tally.fold(*WINDOWS, now=later)
        assert differences(later) == []
        # the clock never goes back: a fold at an earlier moment keeps it, and is exact
        health_tally.fold(*WINDOWS, now=earlier)
        clock = health_tally.read_clock(*WINDOWS)
        assert clock.as_of == later and differences(earlier) == []


def test_every_kind_of_write_is_followed(app, directory_rows):
    rng = random.Random(5)
    ids, clinic_ids = directory_rows["provider_ids"], directory_rows["clinic_ids"]
    edits = [
        {"last_verified_at": NOW}, {"last_verified_at": None},
        {"last_verified_at": NOW - dt.timedelta(days=100)},
        {"state": "VT"}, {"state": None}, {"clinic_id": clinic_ids[0]}, {"clinic_id": None},
        {"active": False}, {"active": True}, {"reported_at": NOW}, {"reported_at": None},
        {"accepting_new_patients": True}, {"accepting_new_patients": False},
        {"first_name": "Unwatched"},
    ]
    with app.app_context():
        health_tally.fold(*WINDOWS, now=NOW - dt.timedelta(hours=5))
        for step in range(60):
            provider = db.session.get(Provider, rng.choice(ids))
            for name, value in rng.choice(edits).items():
                setattr(provider, name, value)
            if step % 7 == 0:
                db.session.add(ListingReport(provider_id=provider.id, reason="other",
                                             reporter_key=f"{1000 + step:064d}"))
            if step % 11 == 0:
                db.session.execute(update(ListingReport).where(
                    ListingReport.provider_id == rng.choice(ids),
                    ListingReport.status == "open").values(status="resolved"))
            db.session.commit()
            if step % 15 == 0:
                health_tally.fold(*WINDOWS, now=NOW + dt.timedelta(minutes=step))
            assert differences(NOW + dt.timedelta(minutes=step)) == [], step
        # new listings, and deleted ones (their reports go with them)
        db.session.add_all(listings_of(rng, clinic_ids, 10))
        gone = db.session.get(Provider, ids[0])
        db.session.execute(ListingReport.__table__.delete().where(
            ListingReport.provider_id == gone.id))
        db.session.delete(gone)
        db.session.commit()
        assert differences(NOW + dt.timedelta(hours=2)) == []


def test_each_listing_keeps_the_count_of_its_open_reports(app, directory_rows):
    with app.app_context():
        counted = dict(db.session.execute(
            select(ListingReport.provider_id, func.count()).where(
                ListingReport.status == "open").group_by(ListingReport.provider_id)).all())
        kept = dict(db.session.execute(select(Provider.id, Provider.open_reports)).all())
        assert {k: v for k, v in kept.items() if v} == counted and counted
        report = db.session.scalars(select(ListingReport).where(
            ListingReport.status == "open")).first()
        before = db.session.get(Provider, report.provider_id).open_reports
        report.status = "dismissed"
        db.session.commit()
        db.session.expire_all()
        assert db.session.get(Provider, report.provider_id).open_reports == before - 1


def test_the_figures_come_from_the_tally_and_equal_the_full_pass(app, directory_rows):
    """The health figures after a fold at NOW and a day's writes, against the figures
    where every listing is a pending change (no fold)."""
    moment = health.Moment(NOW + dt.timedelta(days=1), *WINDOWS)
    with app.app_context():
        unfolded = health.directory_health(1, 10, moment)
        health_tally.fold(*WINDOWS, now=NOW)
        assert pending() == 0
        assert health.directory_health(1, 10, moment) == unfolded
        assert unfolded["overall"]["listings"] > 0 and unfolded["overall"]["open_reports"] > 0


def test_other_windows_read_the_listings_until_a_fold_rebuilds(app, directory_rows):
    other = (60, 200)
    with app.app_context():
        health_tally.fold(*WINDOWS, now=NOW)
        assert differences(windows=other) == []  # computed from the listings meanwhile
        health_tally.fold(*other, now=NOW)  # rebuilds with the new windows
        clock = health_tally.read_clock(*other)
        assert (clock.stale_after_days, clock.hidden_after_days) == other
        assert pending() == 0 and differences(windows=other) == []


def test_a_fold_waits_for_a_writer_and_misses_nothing(app, directory_rows):
    """A writer's uncommitted change is neither folded nor lost: the fold counts what was
    committed, and the writer's change is there for the next one."""
    with app.app_context():
        health_tally.fold(*WINDOWS, now=NOW)
        engine = db.engine
        if engine.dialect.name == "sqlite":
            pytest.skip("SQLite has one writer: a fold waits for the writer's commit")
        provider_id = db.session.scalar(select(Provider.id).where(Provider.listed))
        with engine.connect() as writer:
            writer.execute(update(Provider).where(Provider.id == provider_id)
                           .values(accepting_new_patients=~Provider.accepting_new_patients))
            # the fold cannot hold the change table while the writer's change is open
            with pytest.raises(Exception, match="lock"):
                db.session.execute(text("SET LOCAL lock_timeout = '200ms'"))
                db.session.execute(text(
                    "LOCK TABLE health_tally_change IN SHARE ROW EXCLUSIVE MODE"))
            db.session.rollback()
            writer.commit()
        assert pending() == 2 and differences() == []  # out of one group, into another
        health_tally.fold(*WINDOWS, now=NOW)
        assert pending() == 0 and differences() == []


def test_cli_fold_and_check_find_and_repair_a_wrong_tally(app, runner, directory_rows):
    result = runner.invoke(args=["health", "fold"])
    assert result.exit_code == 0 and "Folded" in result.output, result.output
    assert runner.invoke(args=["health", "check"]).exit_code == 0
    with app.app_context():
        db.session.execute(update(tally_table).values(listings=tally_table.c.listings + 1))
        db.session.commit()
    result = runner.invoke(args=["health", "check"])
    assert result.exit_code == 1 and "recount" in result.output
    result = runner.invoke(args=["health", "check", "--repair"])
    assert result.exit_code == 0 and "counted again" in result.output
    assert runner.invoke(args=["health", "check"]).exit_code == 0
    with app.app_context():
        assert db.session.scalar(select(health_tally_clock.c.generation)) >= 2


def test_the_delivery_workers_fold_the_tally_at_their_daily_check(app, directory_rows):
    from referral.delivery import Worker

    with app.app_context():
        assert pending() > 0
    Worker(app, concurrency=1)._daily_jobs_safely()
    with app.app_context():
        assert pending() == 0 and health_tally.read_clock(*WINDOWS).generation == 1
        assert differences(health_tally.read_clock(*WINDOWS).as_of) == []


def test_a_reader_that_folds_keep_overtaking_recounts_the_listings(app, directory_rows,
                                                                   monkeypatch):
    """Each read finds a newer generation after its statement (a fold committed
    meanwhile): after ``READ_TRIES`` the reader counts the listings themselves, exactly."""
    with app.app_context():
        health_tally.fold(*WINDOWS, now=NOW)
        generations = iter(range(1, 100))
        real = health_tally.read_clock

        def moving(*windows):
            clock = real(*windows)
            return health_tally.Clock(clock.as_of, next(generations), *windows)

        monkeypatch.setattr(health_tally, "read_clock", moving)
        moment = health.Moment(NOW, *WINDOWS)
        overtaken = health.directory_health(1, 10, moment)
        monkeypatch.undo()
        assert next(generations) > 2 * health_tally.READ_TRIES  # it did try again
        assert overtaken == health.directory_health(1, 10, moment)
