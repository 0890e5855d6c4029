"""The migrations create exactly the schema the models describe (on this test database)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from referral.extensions import db


def test_models_and_migrations_agree(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_database_backend_is_the_one_asked_for(app):
    import os
    with app.app_context():
        expected = "postgresql" if os.environ.get("TEST_DATABASE_URL") else "sqlite"
        assert db.engine.dialect.name == expected
