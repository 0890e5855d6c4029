"""Writes the database refuses answer 409 in the error shape, and database errors reach
the log without the rows they quote (PostgreSQL: ``DETAIL: Failing row contains ...``)."""

from __future__ import annotations

import logging
import os

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from referral.errors import ScrubDatabaseErrors, describe_database_error
from referral.extensions import csrf, db
from referral.models import Clinic, Provider, Referral
from tests.conftest import assert_error_shape, make_app, new_npi

SECRET_BIO = "Vellamorn-secret-bio practice of Ysolde"
SECRET_REF = "PT-secret-Qz7741"
POSTGRESQL = "postgresql" in (os.environ.get("TEST_DATABASE_URL") or "")


@pytest.fixture
def production_app(app, database):
    """An app as in production (errors are answered, not raised into the test), with
    routes that force the database to refuse a write; on the test database."""
    node = make_app(database, TESTING=False)

    @node.post("/api/v1/test/listing-breaking-fee-check")
    def listing_breaking_fee_check():
        clinic = Clinic(name="Forced Clinic")
        db.session.add(clinic)
        db.session.add(Provider(npi=new_npi(), first_name="F", last_name="Orced",
                                role="therapist", provider_type="counselor", bio=SECRET_BIO,
                                fee_min=300, fee_max=100, clinic=clinic))
        db.session.commit()
        return {}

    @node.post("/api/v1/test/referral-without-consent")
    def referral_without_consent():
        clinic = Clinic(name="Forced Clinic")
        provider = Provider(npi=new_npi(), first_name="F", last_name="Orced", role="therapist",
                            provider_type="counselor", bio=SECRET_BIO, clinic=clinic)
        db.session.add(provider)
        db.session.flush()
        db.session.add(Referral(therapist=provider, prescriber=provider,
                                sender_clinic_id=clinic.id, receiver_clinic_id=clinic.id,
                                patient_ref=SECRET_REF,
                                patient_state="MA", concerns=["depression"], urgency="soon",
                                contact_preference="phone", consent_to_coordinate=False))
        db.session.flush()
        return {}

    @node.get("/api/v1/test/database-error-quoting-a-value")
    def database_error_quoting_a_value():
        db.session.execute(text("SELECT CAST(:value AS integer)"), {"value": SECRET_REF})
        return {}

    for view in (listing_breaking_fee_check, referral_without_consent):
        csrf.exempt(view)  # like the API's blueprints: no cookies, no CSRF token
    return node


@pytest.mark.parametrize("path, subject", [
    ("/api/v1/test/listing-breaking-fee-check", "listing"),
    ("/api/v1/test/referral-without-consent", "referral"),
])
def test_a_check_constraint_refusal_is_409_and_logs_no_row_value(production_app, caplog, path,
                                                                 subject):
    caplog.set_level(logging.DEBUG)
    response = production_app.test_client().post(path)
    body = assert_error_shape(response, 409)
    assert body["message"] == (f"Another change to this {subject} was saved first; nothing "
                               "was written. Reload and try again.")
    logged = "\n".join(record.getMessage() + (record.exc_text or "")
                       for record in caplog.records)
    constraint = "ck_provider_fee_range" if subject == "listing" else "ck_referral_consent"
    assert constraint in logged  # what failed is logged...
    for value in (SECRET_BIO, SECRET_REF, "Failing row", "Orced"):
        assert value not in logged  # ...never the row
    assert all(record.exc_info is None for record in caplog.records)
    with production_app.app_context():
        assert db.session.query(Provider).filter_by(bio=SECRET_BIO).count() == 0


@pytest.mark.skipif(not POSTGRESQL, reason="needs PostgreSQL (CI runs it there): SQLite's "
                                           "errors quote no values")
def test_an_unhandled_database_error_is_500_and_logged_without_the_value(production_app,
                                                                         caplog):
    caplog.set_level(logging.DEBUG)
    response = production_app.test_client().get("/api/v1/test/database-error-quoting-a-value")
    assert_error_shape(response, 500)
    records = [record for record in caplog.records if record.name.startswith("referral")]
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in records)
    assert "DataError" in logged and "sqlstate 22P02" in logged
    assert "database_error_quoting_a_value" in logged  # the stack is kept
    assert SECRET_REF not in "\n".join(logging.Formatter().format(r) for r in caplog.records)


def test_the_log_filter_keeps_the_stack_and_drops_the_message(app):
    with app.app_context():
        try:
            with db.engine.begin() as connection:
                connection.execute(text(
                    "INSERT INTO clinic (id, name, created_at) VALUES (1, :name, :at), "
                    "(1, :name, :at)"), {"name": SECRET_REF, "at": "2026-01-01"})
        except IntegrityError as caught:
            error = caught
    assert isinstance(error, DBAPIError)
    record = logging.LogRecord("referral", logging.ERROR, __file__, 1, "failed on %s",
                               ("/api/v1/x",), (type(error), error, error.__traceback__))
    assert ScrubDatabaseErrors().filter(record) is True
    assert record.exc_info is None and record.args == ()
    message = record.getMessage()
    assert message.startswith("failed on /api/v1/x\n")
    assert "test_the_log_filter_keeps_the_stack_and_drops_the_message" in message
    assert describe_database_error(error) in message
    assert str(error.orig) not in message and SECRET_REF not in message


def test_every_logger_of_the_package_scrubs_database_errors(app, caplog):
    """Not only Flask's logger: the index sync, the worker and every other module's logger
    log database errors without the rows they quote."""
    names = [name for name in logging.root.manager.loggerDict if name.startswith("referral.")]
    assert "referral.search_sync" in names and "referral.delivery" in names
    for name in names:
        filters = logging.getLogger(name).filters
        assert any(isinstance(f, ScrubDatabaseErrors) for f in filters), name
    with app.app_context():
        try:
            with db.engine.begin() as connection:
                connection.execute(text(
                    "INSERT INTO clinic (id, name, created_at) VALUES (1, :name, :at), "
                    "(1, :name, :at)"), {"name": SECRET_REF, "at": "2026-01-01"})
        except IntegrityError:
            logging.getLogger("referral.search_sync").exception("search index sync failed")
    logged = "\n".join(logging.Formatter().format(r) for r in caplog.records)
    assert "search index sync failed" in logged and "IntegrityError" in logged
    assert SECRET_REF not in logged
