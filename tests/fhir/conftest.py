"""Fixtures of the FHIR tests: a test corpus (generated listings plus hand-made edge
cases) on its own database, a client that validates every FHIR answer, a real HTTP
server for the FHIR client libraries, and the independent expectations the search
tests compare against (the visibility rule written out again, in Python, from rows).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from flask_migrate import upgrade
from sqlalchemy import bindparam, select, update
from werkzeug.serving import make_server

from referral.extensions import db
from referral.models import Clinic, Provider, utcnow
from referral.npi import make_npi
from tests.conftest import fresh_database, make_app
from tests.fhir.validation import check_bundle, check_resource, validate_models

MEDIA_TYPE = "application/fhir+json"
DAY = dt.timedelta(days=1)


@dataclass
class Corpus:
    """The corpus app and the ids of its hand-made edge cases."""

    app: object
    edge: dict = field(default_factory=dict)
    clinics: dict = field(default_factory=dict)


def edge_listing(clinic_id, now, number: int, **values) -> Provider:
    """A listing with realistic defaults, overridden by ``values``."""
    listing = dict(
        npi=make_npi(str(987_650_000 + number)), first_name="Tess", last_name="Ingram",
        credentials="LCSW", role="therapist", provider_type="clinical_social_worker",
        taxonomy_codes=["1041C0700X"], modalities=["CBT", "EMDR"], concerns=["ptsd", "trauma"],
        age_groups=["adult"], languages=["en"], gender="female", bio=None, telehealth=True,
        in_person=True, licensed_states=["MA"], address_line1="12 Harvard St",
        address_line2=None, city="Brookline", state="MA", zip="02445", latitude=42.3467,
        longitude=-71.1206, phone="6175550142", email=None, website=None, fee_min=100,
        fee_max=160, sliding_scale=False, insurance=["aetna"], accepting_new_patients=True,
        accepts_coordinated_care=True, wait_days=10, clinic_id=clinic_id,
        last_verified_at=now - 5 * DAY, active=True)
    listing.update(values)
    return Provider(**listing)


def build_corpus(app) -> Corpus:
    """Seed 600 generated listings and add the edge cases (inside an app context)."""
    from seeds.load import seed_directory

    corpus = Corpus(app)
    now = utcnow()
    seed_directory(600, seed=5, now=now - DAY)
    # updated_at spread over weeks (the seed gives every row the same moment)
    ids = db.session.scalars(select(Provider.id).order_by(Provider.id)).all()
    table = Provider.__table__
    db.session.execute(
        update(table).where(table.c.id == bindparam("pid")).values(updated_at=bindparam("at")),
        [{"pid": i, "at": now - dt.timedelta(hours=(i * 37) % 1500)} for i in ids])
    # keep every verification at least two days away from the stale and hidden cut-offs,
    # so a slow run cannot move a listing across one between a request and its check
    for days in (app.config["STALE_AFTER_DAYS"], app.config["HIDDEN_AFTER_DAYS"]):
        low, high = now - (days + 2) * DAY, now - (days - 2) * DAY
        db.session.execute(update(Provider).where(
            Provider.last_verified_at.between(low, high)).values(
            last_verified_at=now - (days - 3) * DAY))
    db.session.commit()

    registry = Clinic(name="Riverbend Behavioral Health", organization_npi=make_npi("987640001"))
    percent = Clinic(name="100% Wellness_Center", organization_npi=None, phone="2125550199",
                     email="hello@wellness.example.org")
    lonely = Clinic(name="Quiet Harbor Counseling", organization_npi=make_npi("987640002"))
    db.session.add_all([registry, percent, lonely])
    db.session.flush()
    corpus.clinics = {"registry": registry.id, "percent": percent.id, "lonely": lonely.id}
    edges = {
        "gone": edge_listing(percent.id, now, 1, first_name="Gwen", last_name="Gonecourt",
                             active=False),
        "unclaimed": edge_listing(None, now, 2, first_name="Ursula", last_name="Unclaimed",
                                  last_verified_at=None, accepting_new_patients=False,
                                  telehealth=False, modalities=[], concerns=[]),
        "orphan": edge_listing(None, now, 9, first_name="Otto", last_name="Orphanides"),
        "hidden": edge_listing(lonely.id, now, 3, first_name="Hal", last_name="Hidemore",
                               last_verified_at=now - 400 * DAY),
        "stale": edge_listing(percent.id, now, 4, first_name="Stella", last_name="Stalewood",
                              last_verified_at=now - 200 * DAY, accepting_new_patients=False),
        "telehealth_only": edge_listing(
            percent.id, now, 5, first_name="Theo", last_name="Virtanen", in_person=False,
            address_line1=None, city=None, state=None, zip=None, latitude=None,
            longitude=None, licensed_states=["NY", "NJ"], phone=None,
            email="theo@wellness.example.org"),
        "special": edge_listing(
            percent.id, now, 6, first_name="Dana", last_name="D'Angelo",
            credentials="APRN, PMHNP", role="prescriber", provider_type="psychiatric_np",
            taxonomy_codes=["363LP0808X"], modalities=["PSYCHOEDUCATION"],
            concerns=["bipolar", "depression"], age_groups=["adolescent", "adult"],
            languages=["es", "ase"], gender="they/them", licensed_states=["NY", "NJ", "CT"],
            address_line1="350 5th Ave", address_line2="Floor 21", city="New York",
            state="NY", zip="10118", latitude=40.7484, longitude=-73.9857, phone=None,
            wait_days=None, fee_min=None, fee_max=None, insurance=[], sliding_scale=True),
        "multi": edge_listing(
            percent.id, now, 7, first_name="Mira", last_name="Okonkwo-Lee", credentials="PhD",
            provider_type="psychologist", taxonomy_codes=["103T00000X", "103TC0700X"],
            gender=None, email="mira@wellness.example.org",
            website="https://wellness.example.org/mira", address_line1="350 5th Ave",
            address_line2="Floor 21", city="New York", state="NY", zip="10118",
            latitude=40.7484, longitude=-73.9857, licensed_states=["NY"]),
        "no_coordinates": edge_listing(
            percent.id, now, 8, first_name="Nico", last_name="Nowhere-Mapped",
            latitude=None, longitude=None, zip="02446", city="Brookline"),
    }
    db.session.add_all(edges.values())
    db.session.commit()
    corpus.edge = {name: listing.id for name, listing in edges.items()}
    return corpus


@pytest.fixture(scope="session")
def corpus():
    """An app on its own database: 600 generated listings plus the edge cases."""
    with fresh_database() as database:
        app = make_app(database)
        with app.app_context():
            upgrade()
            found = build_corpus(app)
            db.session.remove()
        yield found
        with app.app_context():
            db.engine.dispose()


class FhirClient:
    """The Flask test client, checking every FHIR answer: status, content type, validity."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()

    def get(self, path: str, status: int = 200, headers: dict | None = None) -> dict:
        """GET ``path``; assert the status and media type; validate and return the body."""
        response = self.client.get(path, headers=headers or {})
        assert response.status_code == status, (path, response.get_data(as_text=True)[:2000])
        assert response.mimetype == MEDIA_TYPE, (path, response.content_type)
        body = response.get_json(force=True)
        if body["resourceType"] == "Bundle":
            check_bundle(body)
        elif body["resourceType"] == "OperationOutcome":
            validate_models(body)
            assert status >= 400 and body["issue"][0]["severity"] == "error", body
        else:
            check_resource(body)
        return body

    def pages(self, path: str, headers: dict | None = None) -> list[dict]:
        """Every page of a search, following ``next`` links to the end."""
        bundles = [self.get(path, headers=headers)]
        while True:
            link = {each["relation"]: each["url"] for each in bundles[-1]["link"]}.get("next")
            if not link:
                return bundles
            parts = urlsplit(link)
            bundles.append(self.get(f"{parts.path}?{parts.query}", headers=headers))
            assert len(bundles) < 500, "paging does not end"

    def search_ids(self, path: str) -> tuple[list[int], int]:
        """Ids of every match of a search (all pages, no repeats allowed) and its total."""
        bundles = self.pages(path)
        ids = [int(e["resource"]["id"]) for b in bundles for e in b.get("entry", [])
               if e["search"]["mode"] == "match"]
        assert len(ids) == len(set(ids)), f"repeated matches in {path}"
        assert ids == sorted(ids), "matches come in id order"
        assert all(b["total"] == bundles[0]["total"] for b in bundles)
        return ids, bundles[0]["total"]


@pytest.fixture(scope="session")
def fhir(corpus):
    """A validating FHIR client on the corpus."""
    return FhirClient(corpus.app)


# ---------------------------------------------------------------------------
# Independent expectations: the rule written out again, evaluated on the rows


@dataclass
class Rows:
    """Every listing and clinic of the corpus database, loaded at one moment."""

    now: dt.datetime
    listings: list
    clinics: list
    hidden_after: dt.timedelta
    stale_after: dt.timedelta

    def public(self) -> list:
        """Listings the patient search would show: active, claimed, verified recently enough."""
        return [p for p in self.listings if p.active and p.clinic_id is not None
                and p.last_verified_at is not None
                and self.now - p.last_verified_at <= self.hidden_after]

    def located(self) -> list:
        """Public listings with in-person care at an address."""
        return [p for p in self.public() if p.in_person and p.zip is not None]

    def clinic_addresses(self, clinic_id: int) -> list:
        """Public practice listings of a clinic."""
        return [p for p in self.located() if p.clinic_id == clinic_id]


def load_rows(app) -> Rows:
    """Read every listing and clinic now (detached, with their clinic loaded)."""
    with app.app_context():
        from sqlalchemy.orm import selectinload

        listings = db.session.scalars(select(Provider).options(
            selectinload(Provider.clinic))).all()
        clinics = db.session.scalars(select(Clinic)).all()
        db.session.expunge_all()
        return Rows(utcnow(), listings, clinics,
                    dt.timedelta(days=app.config["HIDDEN_AFTER_DAYS"]),
                    dt.timedelta(days=app.config["STALE_AFTER_DAYS"]))


@pytest.fixture
def rows(corpus) -> Rows:
    """The corpus rows as of this test."""
    return load_rows(corpus.app)


class LiveServer:
    """The app served by werkzeug on 127.0.0.1 and an ephemeral port, in a thread."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        """The FHIR base URL."""
        return f"http://127.0.0.1:{self.server.server_port}/fhir"

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_corpus(corpus):
    """The corpus app over real HTTP."""
    server = LiveServer(corpus.app)
    yield server
    server.stop()
