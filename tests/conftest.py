"""Test fixtures: an app on a migrated database (SQLite, or PostgreSQL when
``TEST_DATABASE_URL`` is set), a clean database per test, and builders.

On PostgreSQL each test run gets a private schema, dropped at the end. If the
PostgreSQL server cannot be reached the run errors; it is never skipped.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
import uuid

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

os.environ["REFERRAL_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="referral-instance-")

from config import normalize_database_url  # noqa: E402
from referral import create_app  # noqa: E402
from referral.extensions import db  # noqa: E402
from referral.npi import make_npi  # noqa: E402
from referral.services import search_service  # noqa: E402

_npi_counter = itertools.count(1)


@contextlib.contextmanager
def fresh_database():
    """A new empty test database: ``(url, engine options)``; dropped afterwards."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        path = os.path.join(tempfile.mkdtemp(prefix="referral-db-"), "test.sqlite3")
        yield "sqlite:///" + path, {}
        return
    url = normalize_database_url(url)
    schema = f"test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield url, {"connect_args": {"options": f"-csearch_path={schema}"}}
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def database():
    """``(url, engine options)`` of the test database, created for this run."""
    with fresh_database() as found:
        yield found


def make_app(database, **overrides):
    """A configured app on the test database (not migrated)."""
    url, engine_options = database
    config = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
              "SQLALCHEMY_ENGINE_OPTIONS": {"hide_parameters": True,
                                            **engine_options},
              "INDEX_DIR": tempfile.mkdtemp(prefix="referral-index-"),
              "RATE_LIMITS": False,
              # workers in tests deliver only; the daily jobs' tests switch them on
              "WORKER_DAILY_JOBS": False}
    config.update(overrides)
    return create_app(config)


@pytest.fixture(scope="session")
def app(database):
    """The app, with the database migrated once per run."""
    app = make_app(database)
    with app.app_context():
        upgrade(revision="heads")
    return app


@pytest.fixture(autouse=True)
def _clean_database(request):
    """Empty every table after each test that used the app."""
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    # the background applier finishes the test's last writes before the index goes away
    search_service(app).settle(timeout=30)
    with app.app_context():
        db.session.remove()
        tables = list(reversed(db.metadata.sorted_tables))
        # last: deleting listings and reports (SQLite) fires the health tally's triggers
        tables.sort(key=lambda table: table.name.startswith("health_tally"))
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                names = ", ".join(f'"{t.name}"' for t in tables)
                connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    connection.execute(table.delete())
        reset_search_state(app)


def reset_search_state(app):
    """Forget the search index of a database that was just emptied."""
    import shutil

    state = search_service(app).state
    state.forget()
    shutil.rmtree(state.index_dir, ignore_errors=True)
    os.makedirs(state.index_dir)


@pytest.fixture
def client(app):
    """A test client."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner."""
    return app.test_cli_runner()


@pytest.fixture
def make_clinic(app):
    """Build a clinic: ``make_clinic(name) -> (clinic_id, token)``."""
    from referral.auth import issue_token
    from referral.models import Clinic

    def build(name="Harbor Counseling"):
        with app.app_context():
            clinic = Clinic(name=name)
            db.session.add(clinic)
            _, token = issue_token(clinic)
            db.session.commit()
            return clinic.id, token
    return build


def new_npi() -> str:
    """A fresh valid NPI."""
    return make_npi(str(100_000_000 + next(_npi_counter)))


@pytest.fixture
def listing():
    """Build a valid listing payload: ``listing(**overrides)``; None values are dropped."""
    def build(**overrides):
        payload = {
            "npi": new_npi(), "first_name": "Maya", "last_name": "Okafor", "credentials": "LCSW",
            "provider_type": "clinical_social_worker", "taxonomy_codes": ["1041C0700X"],
            "modalities": ["CBT", "DBT"], "concerns": ["depression", "anxiety"],
            "age_groups": ["adult"], "languages": ["en", "es"], "telehealth": True,
            "in_person": True, "licensed_states": ["MA", "NH"],
            "address_line1": "200 Longwood Ave", "state": "MA", "zip": "02115",
            "fee_min": 90, "fee_max": 150, "sliding_scale": True,
            "insurance": ["aetna", "bcbs"], "accepting_new_patients": True,
            "accepts_coordinated_care": True, "wait_days": 7,
        }
        payload.update(overrides)
        return {key: value for key, value in payload.items() if value is not None}
    return build


def bearer(token: str) -> dict:
    """Authorization header for a clinic token."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def create(client, listing):
    """Create a listing through the API: ``create(token, **overrides) -> response json``."""
    def build(token, **overrides):
        response = client.post("/api/v1/providers", json=listing(**overrides),
                               headers=bearer(token))
        assert response.status_code == 201, response.json
        return response.json
    return build


def assert_error_shape(response, status: int) -> dict:
    """The response is the project's error shape with ``status``; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"code", "status", "message", "errors"}, body
    assert body["code"] == status
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], dict)
    return body


@pytest.fixture(scope="module")
def directory():
    """An app on its own database with 1,500 generated listings, and those listings."""
    from seeds.load import seed_directory

    with fresh_database() as database:
        app = make_app(database)
        with app.app_context():
            upgrade(revision="heads")
            seed_directory(1500, seed=11)
            with db.engine.connect() as connection:
                search_service(app).sync(connection, allow_rebuild=True)
            from referral.models import Provider
            providers = db.session.scalars(db.select(Provider)).all()
            db.session.expunge_all()
        yield app, providers
        with app.app_context():
            db.engine.dispose()


_listing_ids = itertools.count(1)


@pytest.fixture
def rendered(listing):
    """Build a listing as the API renders it, without a database:
    ``rendered(clinic=(id, name), verified_days_ago=0, **listing overrides)``."""
    import datetime as dt

    from referral.listings import complete_listing, full_listing
    from referral.schemas.listings import ListingSchema

    def build(clinic=(1, "Harbor Counseling"), verified_days_ago=0, **overrides):
        now = dt.datetime.now(dt.UTC)
        values = full_listing(complete_listing(ListingSchema().load(listing(**overrides))))
        return {"id": next(_listing_ids), **values,
                "clinic": {"id": clinic[0], "name": clinic[1]} if clinic else None,
                "last_verified_at": now - dt.timedelta(days=verified_days_ago),
                "updated_at": now, "active": True}
    return build


def generated_directory(count: int, seed: int) -> list[dict]:
    """``count`` generated demo listings as the API renders them (no database)."""
    import datetime as dt

    from seeds.generator import generate_clinics, generate_provider

    now = dt.datetime.now(dt.UTC)
    clinics = generate_clinics(max(2, count // 20), seed)
    listings = []
    for index in range(count):
        clinic_index, values = generate_provider(seed, index, clinics, now)
        listings.append({"id": index + 1, **values,
                         "clinic": {"id": clinic_index + 1, "name": clinics[clinic_index].name},
                         "updated_at": now, "active": True})
    return listings


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on a free loopback port; ``smtp.messages``."""
    from tests.receivers import SmtpSink

    sink = SmtpSink()
    yield sink
    sink.close()


@pytest.fixture
def mailing(database, smtp):
    """The app sending its emails to the ``smtp`` server (same database as ``app``)."""
    from config import mail_settings

    return make_app(database, SMTP_URL=smtp.url, **mail_settings(smtp.url, "dir@example.org"))
