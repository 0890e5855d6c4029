"""Unit tests of listing operations under concurrency (no HTTP): the row version.

Another writer commits between an operation's read and its UPDATE
(``tests.interleave``); the operation must then write nothing and say so
(``Conflict``), and the stored listing must be the other writer's, within the rules.
"""

from __future__ import annotations

import pytest

from referral import listings
from referral.bulk import bulk_upsert
from referral.errors import Conflict, PreconditionFailed
from referral.extensions import db
from referral.listing_rules import listing_problems
from referral.models import Clinic, Provider, ProviderAudit
from referral.schemas.listings import LISTING_FIELDS, ListingSchema
from tests.interleave import another_writer_first


@pytest.fixture
def owned(app, make_clinic, listing):
    """``(clinic_id, provider_id, payload)``: a clinic's listing with fees 50-150."""
    clinic_id, _ = make_clinic()
    payload = listing(fee_min=50, fee_max=150, bio="Unit-race bio Xerinthal")
    with app.app_context():
        clinic = db.session.get(Clinic, clinic_id)
        provider = listings.create_provider(clinic, ListingSchema().load(payload))
        provider_id = provider.id
        db.session.remove()
    return clinic_id, provider_id, payload


def stored(app, provider_id: int) -> tuple[dict, int, int]:
    """The stored listing's fields, its version and its number of audit entries."""
    with app.app_context():
        provider = db.session.get(Provider, provider_id)
        values = {field: getattr(provider, field) for field in LISTING_FIELDS}
        audits = db.session.query(ProviderAudit).filter_by(provider_id=provider_id).count()
        version = provider.version
        db.session.remove()
    return values, version, audits


def other_clinic_user(app, clinic_id: int, provider_id: int, changes: dict):
    """The other writer: the same clinic changing the listing through the same operation."""
    def write():
        listings.update_provider(db.session.get(Clinic, clinic_id), provider_id, changes)
    return write


def test_every_update_bumps_the_version(app, owned):
    clinic_id, provider_id, _ = owned
    _, first, _ = stored(app, provider_id)
    with app.app_context():
        clinic = db.session.get(Clinic, clinic_id)
        listings.update_provider(clinic, provider_id, {"wait_days": 9})
        listings.verify_provider(clinic, provider_id)
        listings.deactivate_provider(clinic, provider_id)
        db.session.remove()
    assert first == 1
    assert stored(app, provider_id)[1] == 4


@pytest.mark.parametrize("mine, theirs", [
    ({"fee_min": 100}, {"fee_max": 80}),
    ({"telehealth": False}, {"in_person": False}),
])
def test_an_update_after_another_writer_saved_is_refused_and_the_rules_hold(
        app, owned, mine, theirs):
    clinic_id, provider_id, _ = owned
    _, version, audits = stored(app, provider_id)
    with app.app_context():
        clinic = db.session.get(Clinic, clinic_id)
        with another_writer_first(app, other_clinic_user(app, clinic_id, provider_id, theirs)), \
                pytest.raises(Conflict) as refused:
            listings.update_provider(clinic, provider_id, mine)
        db.session.remove()
    assert "saved first" in refused.value.message and "listing" in refused.value.message
    values, now, audits_after = stored(app, provider_id)
    assert {field: values[field] for field in theirs} == theirs  # theirs, not mine
    assert all(values[field] != value for field, value in mine.items())
    assert listing_problems(values) == {}
    assert (now, audits_after) == (version + 1, audits + 1)  # only the other writer's change


@pytest.mark.parametrize("operation", ["verify_provider", "deactivate_provider"])
def test_verify_and_deactivate_after_another_writer_saved_are_refused(app, owned, operation):
    clinic_id, provider_id, _ = owned
    before, version, audits = stored(app, provider_id)
    with app.app_context():
        clinic = db.session.get(Clinic, clinic_id)
        with another_writer_first(app, other_clinic_user(app, clinic_id, provider_id,
                                                         {"wait_days": 30})), \
                pytest.raises(Conflict):
            getattr(listings, operation)(clinic, provider_id)
        provider = db.session.get(Provider, provider_id)
        assert provider.active is True
        db.session.remove()
    values, now, audits_after = stored(app, provider_id)
    assert values["wait_days"] == 30
    assert (now, audits_after) == (version + 1, audits + 1)


def test_a_bulk_upload_after_another_writer_saved_writes_nothing(app, owned, listing):
    clinic_id, provider_id, payload = owned
    fresh = listing(last_name="Bulknew")
    changed = {**payload, "wait_days": 45}
    with app.app_context():
        clinic = db.session.get(Clinic, clinic_id)
        with another_writer_first(app, other_clinic_user(app, clinic_id, provider_id,
                                                         {"fee_max": 120})), \
                pytest.raises(Conflict):
            bulk_upsert(clinic, [changed, fresh])
        assert db.session.query(Provider).filter_by(npi=fresh["npi"]).count() == 0
        db.session.remove()
    values, _, _ = stored(app, provider_id)
    assert (values["fee_max"], values["wait_days"]) == (120, payload["wait_days"])


def test_an_expected_version_that_is_not_current_writes_nothing(app, owned):
    clinic_id, provider_id, _ = owned
    before, version, audits = stored(app, provider_id)
    with app.app_context():
        clinic = db.session.get(Clinic, clinic_id)
        for operation, args in ((listings.update_provider, ({"wait_days": 2},)),
                                (listings.verify_provider, ()),
                                (listings.deactivate_provider, ())):
            with pytest.raises(PreconditionFailed) as stale:
                operation(clinic, provider_id, *args, expected_versions={version + 1})
            assert stale.value.status == 412
        listings.update_provider(clinic, provider_id, {"wait_days": 2},
                                 expected_versions={version})
        db.session.remove()
    values, now, audits_after = stored(app, provider_id)
    assert (values["wait_days"], now, audits_after) == (2, version + 1, audits + 1)
