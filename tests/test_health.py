"""Directory health: the SQL figures (overall, by state, by clinic, verification age)
compared with the same figures recomputed here in plain Python from the rows the test
inserted; the operators' page and API and who may see them; the chart; the public page."""

from __future__ import annotations

import datetime as dt
import random
import re
import statistics
import xml.etree.ElementTree as ET

import pytest

from referral import accounts, health
from referral.extensions import db
from referral.models import Clinic, ListingReport, Provider, Referral
from tests.conftest import assert_error_shape, bearer, new_npi
from tests.web.test_pages import CSRF, text

# A Thursday afternoon, UTC
NOW = dt.datetime(2026, 11, 26, 15, 30, tzinfo=dt.UTC)
MOMENT = health.Moment(NOW, 90, 365)
PASSWORD = "lantern orchard quiet 58"


def weekday_seconds(start: dt.datetime, end: dt.datetime) -> float:
    """Business time the slow, obvious way: each day's overlap, weekdays only."""
    total, day = 0.0, dt.datetime.combine(start.date(), dt.time(), tzinfo=dt.UTC)
    while day < end:
        following = day + dt.timedelta(days=1)
        if day.weekday() < 5:
            total += max(0.0, (min(end, following) - max(start, day)).total_seconds())
        day = following
    return total


@pytest.fixture
def rows(app):
    """Clinics, listings, reports and referrals of every kind, inserted directly; returns
    plain dicts of what was inserted."""
    rng = random.Random(14)
    listings, referrals, reports = [], [], []
    with app.app_context():
        clinics = [Clinic(name=f"Clinic {n}") for n in range(4)]
        db.session.add_all(clinics)
        db.session.flush()
        clinic_ids = [c.id for c in clinics]
        for number in range(90):
            clinic_id = rng.choice(clinic_ids + [None])  # None: an unclaimed registry record
            age = rng.choice([None, 0, 5, 29, 30, 59, 89, 91, 120, 200, 364, 366, 500, 1000])
            row = {"npi": new_npi(), "first_name": "Test", "last_name": f"P{number}",
                   "role": "prescriber" if number % 3 == 0 else "therapist",
                   "provider_type": "psychiatrist" if number % 3 == 0 else "psychologist",
                   "state": rng.choice(["MA", "NY", "TX", None]), "clinic_id": clinic_id,
                   "last_verified_at": (NOW - dt.timedelta(days=age, hours=rng.random() * 20)
                                        if age is not None else None),
                   "reported_at": NOW - dt.timedelta(days=3) if rng.random() < 0.15 else None,
                   "accepting_new_patients": rng.random() < 0.6,
                   "active": rng.random() < 0.85}
            provider = Provider(**row)
            db.session.add(provider)
            db.session.flush()
            listings.append({**row, "id": provider.id})
        for number in range(40):
            provider = rng.choice(listings)
            row = {"provider_id": provider["id"], "reason": "could_not_reach",
                   "reporter_key": f"{number:064d}",
                   "status": rng.choice(["open", "open", "resolved", "dismissed"]),
                   "created_at": NOW - dt.timedelta(days=rng.randint(0, 60))}
            db.session.add(ListingReport(**row))
            reports.append(row)
        prescribers = [p for p in listings if p["role"] == "prescriber" and p["clinic_id"]]
        therapists = [p for p in listings if p["role"] == "therapist" and p["clinic_id"]]
        for number in range(70):
            prescriber, therapist = rng.choice(prescribers), rng.choice(therapists)
            created = NOW - dt.timedelta(days=rng.choice([0, 1, 2, 3, 5, 10, 40, 89, 95, 200]),
                                         hours=rng.random() * 24)
            status = rng.choice(["requested", "accepted", "rejected", "expired", "cancelled",
                                 "completed"])
            responded = None
            if status in ("accepted", "rejected", "completed"):
                responded = created + dt.timedelta(hours=rng.choice([1, 5, 20, 40, 60, 100]),
                                                   minutes=rng.randint(0, 59))
            row = {"therapist_id": therapist["id"], "prescriber_id": prescriber["id"],
                   "sender_clinic_id": therapist["clinic_id"],
                   "receiver_clinic_id": prescriber["clinic_id"], "patient_ref": f"PT-{number}",
                   "patient_state": rng.choice(["MA", "NY", "VT"]), "urgency": "routine",
                   "contact_preference": "phone",
                   "consent_to_coordinate": True, "status": status, "created_at": created,
                   "responded_at": responded}
            db.session.add(Referral(**row))
            referrals.append(row)
        db.session.commit()
    return {"listings": listings, "referrals": referrals, "reports": reports,
            "clinic_ids": clinic_ids}


def share(part, whole):
    return round(part / whole, 4) if whole else None


def expected(listings, reports, referrals) -> dict:
    """The figures of one group, from the inserted rows, in plain Python."""
    mine = [p for p in listings if p["active"] and p["clinic_id"] is not None]
    ids = {p["id"] for p in mine}
    verified = [p for p in mine if p["last_verified_at"] is not None
                and NOW - p["last_verified_at"] <= dt.timedelta(days=90)]
    hidden = [p for p in mine if p["last_verified_at"] is None
              or NOW - p["last_verified_at"] > dt.timedelta(days=365)]
    reported = [p for p in mine if p["reported_at"] is not None]
    accepting = [p for p in mine if p["accepting_new_patients"]]
    recent = [r for r in referrals if NOW - r["created_at"] <= dt.timedelta(days=90)]
    answered = [r for r in recent if r["responded_at"] is not None]
    two_days = 2 * 86400
    due = [r for r in recent if r["responded_at"] is not None or r["status"] == "expired"
           or (r["status"] == "requested" and weekday_seconds(r["created_at"], NOW) >= two_days)]
    in_time = [r for r in answered
               if weekday_seconds(r["created_at"], r["responded_at"]) <= two_days]
    hours = [(r["responded_at"] - r["created_at"]).total_seconds() / 3600 for r in answered]
    return {
        "listings": len(mine), "verified": len(verified),
        "verified_share": share(len(verified), len(mine)),
        "stale": len(mine) - len(verified), "stale_share": share(len(mine) - len(verified),
                                                                 len(mine)),
        "hidden": len(hidden), "hidden_share": share(len(hidden), len(mine)),
        "reported": len(reported), "reported_share": share(len(reported), len(mine)),
        "open_reports": sum(1 for r in reports if r["status"] == "open"
                            and r["provider_id"] in ids),
        "accepting_new_patients": len(accepting),
        "accepting_new_patients_share": share(len(accepting), len(mine)),
        "referrals": {
            "sent": len(recent), "answered": len(answered),
            "median_answer_hours": round(statistics.median(hours), 1) if hours else None,
            "due_an_answer": len(due), "answered_within_2_business_days": len(in_time),
            "answered_within_2_business_days_share": share(len(in_time), len(due))},
    }


def test_overall_state_and_clinic_figures_match_the_rows(app, rows):
    listings, reports, referrals = rows["listings"], rows["reports"], rows["referrals"]
    with app.app_context():
        got = health.directory_health(page=1, per_page=100, moment=MOMENT)
    assert got["overall"] == expected(listings, reports, referrals)
    assert got["overall"]["referrals"]["due_an_answer"] > got["overall"]["referrals"][
        "answered_within_2_business_days"] > 0  # the data exercises both sides
    states = {p["state"] for p in listings if p["active"] and p["clinic_id"] is not None}
    states |= {r["patient_state"] for r in referrals
               if NOW - r["created_at"] <= dt.timedelta(days=90)}
    assert "VT" in states and "TX" in states  # only referrals / only listings
    assert [entry["state"] for entry in got["by_state"]] == sorted(
        states - {None}) + ([None] if None in states else [])
    for entry in got["by_state"]:
        state = entry.pop("state")
        assert entry == expected([p for p in listings if p["state"] == state], reports,
                                 [r for r in referrals if r["patient_state"] == state]), state
    clinics = got["by_clinic"]
    assert clinics["total"] == len(rows["clinic_ids"])
    order = [entry["clinic"]["id"] for entry in clinics["items"]]
    shares = []
    for entry in clinics["items"]:
        clinic_id = entry.pop("clinic")["id"]
        assert entry == expected([p for p in listings if p["clinic_id"] == clinic_id], reports,
                                 [r for r in referrals if r["receiver_clinic_id"] == clinic_id])
        shares.append(entry["verified_share"])
    assert shares == sorted(shares)  # the least verified first
    # a page of two
    with app.app_context():
        page = health.by_clinic(2, 2, MOMENT)
    assert page["total"] == 4 and [e["clinic"]["id"] for e in page["items"]] == order[2:4]


def test_verification_age_buckets_match_the_rows(app, rows):
    mine = [p for p in rows["listings"] if p["active"] and p["clinic_id"] is not None]
    with app.app_context():
        got = health.verification_age(MOMENT)
    counts = [0] * 13
    for p in mine:
        if p["last_verified_at"] is not None:
            counts[min(12, (NOW - p["last_verified_at"]).days // 30)] += 1
    assert [b["listings"] for b in got["buckets"]] == counts
    assert got["never_verified"] == sum(1 for p in mine if p["last_verified_at"] is None)
    assert (got["buckets"][0]["from_days"], got["buckets"][0]["to_days"]) == (0, 29)
    assert (got["buckets"][-1]["from_days"], got["buckets"][-1]["to_days"]) == (360, None)


def test_an_empty_directory_has_no_shares(app):
    with app.app_context():
        got = health.directory_health(moment=MOMENT)
    assert got["overall"]["listings"] == 0 and got["overall"]["verified_share"] is None
    assert got["overall"]["referrals"]["median_answer_hours"] is None
    assert got["by_state"] == [] and got["by_clinic"]["items"] == []


def test_business_time_in_sql_agrees_with_python(app):
    """The SQL clock (both databases) against the slow day-by-day count."""
    from sqlalchemy import literal, select

    from referral.business_time import business_clock_sql

    rng = random.Random(3)
    with app.app_context():
        clinic = Clinic(name="Clock")
        db.session.add(clinic)
        provider = Provider(npi=new_npi(), first_name="A", last_name="B", role="prescriber",
                            provider_type="psychiatrist", clinic=clinic)
        db.session.add(provider)
        db.session.commit()
        for _ in range(25):
            start = NOW - dt.timedelta(days=rng.randint(0, 30), seconds=rng.randint(0, 86399))
            end = start + dt.timedelta(days=rng.randint(0, 9), seconds=rng.randint(0, 86399))
            provider.created_at, provider.updated_at = start, end
            db.session.commit()
            seconds = db.session.scalar(select(
                business_clock_sql(Provider.updated_at) - business_clock_sql(Provider.created_at)
                + literal(0.0)).where(Provider.id == provider.id))
            assert float(seconds) == pytest.approx(weekday_seconds(start, end), abs=0.01)


# ---------------------------------------------------------------------------
# Pages, API and who may see them


def sign_in(client, email):
    response = client.post("/clinic/sign-in", data={
        "email": email, "password": PASSWORD,
        "csrf_token": CSRF.search(text(client.get("/clinic/sign-in"))).group(1)})
    assert response.status_code == 302, text(response)


@pytest.fixture
def people(app, make_clinic):
    clinic_id, token = make_clinic("Lakeside")
    with app.app_context():
        accounts.create_user(None, "ops@directory.example", "operator", PASSWORD,
                             confirmed=True)
        accounts.create_user(db.session.get(Clinic, clinic_id), "staff@lakeside.example",
                             "admin", PASSWORD, confirmed=True)
        db.session.commit()
    return {"token": token}


def test_only_operators_see_the_health_page_and_api(app, people, create):
    create(people["token"], last_name="Visible")
    anonymous = app.test_client()
    assert anonymous.get("/operator/health").status_code == 302  # to sign-in
    assert_error_shape(anonymous.get("/api/v1/operator/health"), 401)
    assert_error_shape(anonymous.get("/api/v1/operator/health",
                                     headers=bearer(people["token"])), 403)
    assert_error_shape(anonymous.get("/api/v1/operator/health",
                                     headers=bearer("mhd_not-a-token")), 403)
    clinic = app.test_client()
    sign_in(clinic, "staff@lakeside.example")
    assert clinic.get("/operator/health").status_code == 403
    assert clinic.get("/operator/health/verification-age.svg").status_code == 403
    assert_error_shape(clinic.get("/api/v1/operator/health"), 403)
    operator = app.test_client()
    sign_in(operator, "ops@directory.example")
    page = operator.get("/operator/health")
    assert page.status_code == 200
    assert "Verified within 90 days" in text(page) and "Lakeside" in text(page)
    assert '<img src="/operator/health/verification-age.svg"' in text(page)
    answer = operator.get("/api/v1/operator/health?per_page=10")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["overall"]["listings"] == 1 and body["overall"]["verified_share"] == 1.0
    assert body["by_clinic"]["items"][0]["clinic"]["name"] == "Lakeside"
    assert body["by_state"][0]["state"] == "MA"
    assert len(body["verification_age"]["buckets"]) == 13
    assert_error_shape(operator.get("/api/v1/operator/health?per_page=1000"), 422)
    assert_error_shape(operator.get("/api/v1/operator/health?color=red"), 422)
    assert answer.headers["Cache-Control"].startswith("no-store")


def test_the_chart_is_well_formed_svg_with_one_bar_per_bucket(app, rows, people):
    operator = app.test_client()
    sign_in(operator, "ops@directory.example")
    response = operator.get("/operator/health/verification-age.svg")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    svg = response.get_data(as_text=True)
    # no external assets: nothing fetched (namespace names are not fetched)
    assert not re.search(r'href="(?!#)|url\((?!#)|<image|@import', svg)
    root = ET.fromstring(svg)
    ns = {"svg": "http://www.w3.org/2000/svg"}
    bars = {g.get("id"): g for g in root.iter("{http://www.w3.org/2000/svg}g")
            if (g.get("id") or "").startswith("bar-")}
    with app.app_context():
        ages = health.verification_age()
    labels = [f"bar-{b['from_days']}" for b in ages["buckets"]] + ["bar-never"]
    assert sorted(bars) == sorted(labels)
    counts = [b["listings"] for b in ages["buckets"]] + [ages["never_verified"]]
    assert 0 in counts and max(counts) > 1  # empty bars and tall ones
    # each bar is as tall as its count (heights of the drawn rectangles, to scale)
    heights = []
    for label in labels:
        (path,) = bars[label].iter("{http://www.w3.org/2000/svg}path")
        ys = [float(v) for v in re.findall(r"[-\d.]+", path.get("d"))][1::2]
        heights.append(max(ys) - min(ys))
    scale = max(heights) / max(counts)
    assert heights == pytest.approx([count * scale for count in counts], abs=0.05)
    # a text alternative inside the SVG too, with every count
    title = root.find("svg:title", ns).text
    assert f"{sum(counts)} listings" in title
    for bucket in ages["buckets"][:-1]:
        assert f"{bucket['from_days']} to {bucket['to_days']} days: {bucket['listings']}" in title
    assert f"never verified: {ages['never_verified']}" in title


def test_the_public_accuracy_page_states_the_figures(app, rows, client):
    with app.app_context():
        figures = health.overall()
    app.extensions.pop("accuracy_figures", None)  # figures kept from an earlier test
    page = client.get("/about/accuracy")
    assert page.status_code == 200
    body = text(page)
    assert "988" in body  # the crisis notice of every patient page
    assert f"{figures['listings']:,} listings" in body
    assert f"{round(100 * figures['verified_share'])}%" in body
    assert 'href="/about/accuracy"' in text(client.get("/"))  # linked from the footer
    # computed at most every few minutes: a change shows only after that
    listed = next(p for p in rows["listings"] if p["active"] and p["clinic_id"] is not None)
    with app.app_context():
        db.session.get(Provider, listed["id"]).active = False
        db.session.commit()
        assert health.overall()["listings"] == figures["listings"] - 1
    assert f"{figures['listings']:,} listings" in text(client.get("/about/accuracy"))
    app.extensions.pop("accuracy_figures")
    assert f"{figures['listings'] - 1:,} listings" in text(client.get("/about/accuracy"))
