"""Deterministic races for unit and HTTP tests: another writer commits while a write is
being made, between its reads and its statements.

``another_writer_first(app, write)`` runs ``write()`` at the first flush (in this
process) that writes a listing or a referral, i.e. after the operation under test has
read its rows and decided what to write, before its statements reach the database.
``write()`` runs in an app context of its own (its own session, connection and
transaction, committed), so it is a real concurrent writer. No mock: both writes
go to the test database.
"""

from __future__ import annotations

import contextlib

from sqlalchemy import event

from referral.extensions import db
from referral.models import Provider, Referral


def _writes_listing_or_referral(session) -> bool:
    return any(isinstance(obj, (Provider, Referral))
               for obj in (*session.dirty, *session.new))


@contextlib.contextmanager
def another_writer_first(app, write):
    """While the block runs, the first flush that writes a listing or a referral is
    preceded by ``write()``, committed in an app context of its own."""
    fired: list[bool] = []

    def before_flush(session, _context, _instances):
        if not fired and _writes_listing_or_referral(session):
            fired.append(True)
            with app.app_context():
                write()
                db.session.remove()

    event.listen(db.session, "before_flush", before_flush)
    try:
        yield
    finally:
        event.remove(db.session, "before_flush", before_flush)
    assert fired, "the operation wrote nothing, so no other writer came first"
