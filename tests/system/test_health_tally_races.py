"""The health tally under racing writers: clinics' edits, verifications and patients'
reports through a real gunicorn server with two worker processes (SQLite in the first
pass, PostgreSQL in the second) while this process folds the tally again and again. At
the end, and after a last fold, the tally must equal a recount of the listings: no change
folded twice, none lost, none folded while its writer had not committed."""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import func, select

from referral import health_tally
from referral.extensions import db
from referral.models import health_tally_change
from tests.conftest import new_npi
from tests.system.test_races import (  # noqa: F401 - fixtures of the race tests, reused
    make_clinic,
    server,
    site,
    site_app,
)

pytestmark = pytest.mark.system

LISTINGS = 6
WRITERS = 4
WRITES_EACH = 30


def test_racing_writes_and_folds_keep_the_tally_exact(site_app, server, make_clinic):  # noqa: F811
    token = make_clinic("Tally Race Clinic")
    ids = []
    for number in range(LISTINGS):
        status, created = server.request("POST", "/api/v1/providers", {
            "npi": new_npi(), "first_name": "Tally", "last_name": f"Racer{number}",
            "provider_type": "counselor", "modalities": ["CBT"], "telehealth": True,
            "in_person": False, "licensed_states": ["MA"], "state": "MA"}, token)
        assert status == 201, created
        ids.append(created["id"])
    windows = site_app.config["STALE_AFTER_DAYS"], site_app.config["HIDDEN_AFTER_DAYS"]
    answers: list[int] = []
    done = threading.Event()
    folds = []

    def write(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(WRITES_EACH):
            provider_id = rng.choice(ids)
            kind = rng.choice(["verify", "intake", "state", "report"])
            if kind == "verify":
                status, _ = server.request("POST", f"/api/v1/providers/{provider_id}/verify",
                                           None, token)
            elif kind == "report":
                status, _ = server.request("POST", f"/api/v1/providers/{provider_id}/reports",
                                           {"reason": "could_not_reach"})
            else:
                change = ({"accepting_new_patients": rng.random() < 0.5} if kind == "intake"
                          else {"state": rng.choice(["MA", "NH", "VT"])})
                status, _ = server.request("PATCH", f"/api/v1/providers/{provider_id}",
                                           change, token)
            answers.append(status)

    def fold() -> None:
        with site_app.app_context():
            while not done.is_set():
                folds.append(health_tally.fold(*windows))
                db.session.remove()
                done.wait(0.02)  # (workers fold every minute; SQLite's lock is not fair)

    folder = threading.Thread(target=fold)
    folder.start()
    writers = [threading.Thread(target=write, args=(seed,)) for seed in range(WRITERS)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=300)
    done.set()
    folder.join(timeout=60)
    assert all(status < 500 for status in answers), answers
    assert answers.count(200) + answers.count(201) > WRITERS * WRITES_EACH // 2, answers
    assert sum(1 for n in folds if n) >= 3, folds  # folds ran between the writes
    with site_app.app_context():
        assert health_tally.check(*windows) == []
        health_tally.fold(*windows)
        assert db.session.scalar(select(func.count()).select_from(health_tally_change)) == 0
        assert health_tally.check(*windows) == []
        db.session.remove()
