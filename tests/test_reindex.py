"""The full reindex from the database (``SearchState.rebuild``, ``referral reindex``): the
text index it writes in several processes, and the structured table it reads column by
column, against the straightforward ones (whoosh's own writer over ``text_documents``,
``ProviderTable.upsert`` over ``table_records``)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import update

from referral.extensions import db
from referral.models import Provider
from referral.search_sync import (
    VOCABULARIES,
    SearchState,
    id_ranges,
    listed_table,
    table_records,
    text_documents,
)
from search_index.table import TABLE_FIELDS, ProviderTable
from search_index.text import TextIndex
from tests.search_index.test_bulk import contents


@pytest.fixture(scope="module")
def odd_directory(directory):
    """The generated directory with odd values on a few listings: unknown vocabulary
    values, a JSON null list, missing numbers and times, a reported one, an
    unlisted one (inactive) and one without a clinic."""
    app, providers = directory
    ids = [provider.id for provider in providers[:8]]
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    changes = [
        {"modalities": ["CBT", "NOT-A-MODALITY"], "gender": "Non-Binary"},
        {"modalities": None, "gender": "  WOMAN "},
        {"fee_min": None, "fee_max": None, "wait_days": None, "latitude": None,
         "longitude": None, "last_verified_at": None},
        {"reported_at": now, "gender": None, "state": None},
        {"active": False},
        {"clinic_id": None},
        {"languages": [], "insurance": [], "licensed_states": ["ZZ", "MA"]},
        {"bio": None, "credentials": None},
    ]
    with app.app_context():
        for provider_id, change in zip(ids, changes, strict=True):
            db.session.execute(update(Provider).where(Provider.id == provider_id)
                               .values(**change))
        db.session.commit()
    return app, ids


def test_the_table_read_by_columns_is_the_table_upserted_by_records(odd_directory):
    app, _ = odd_directory
    with app.app_context(), db.engine.connect() as connection:
        plain = ProviderTable(VOCABULARIES)
        plain.upsert(table_records(connection))
        fast = listed_table(connection)
    assert len(fast) == len(plain) > 1000
    for name in TABLE_FIELDS:
        mine, upserted = fast.column(name), plain.column(name)
        assert mine.dtype == upserted.dtype, name
        assert np.array_equal(mine, upserted, equal_nan=mine.dtype.kind == "f"), name
    ids = np.arange(-3, len(plain.row_of_id) + 5)
    assert np.array_equal(fast.rows_for_ids(ids), plain.rows_for_ids(ids))


@pytest.mark.parametrize("procs", [1, 2, 3])
def test_the_rebuild_writes_the_straightforward_index_and_table(odd_directory, tmp_path,
                                                                procs):
    app, ids = odd_directory
    state = SearchState(str(tmp_path / "index"))
    told = []
    with app.app_context(), db.engine.connect() as connection:
        count = state.rebuild(connection, progress=told.append, procs=procs)
        documents = [document for _, document in text_documents(connection) if document]
        plain = TextIndex(str(tmp_path / "plain"))
        plain.rebuild(iter(documents), 1)
        table = listed_table(connection)
    assert count == sum(told) == len(documents) > 1000
    assert len(list(state.text.searcher().reader().leaf_readers())) == procs
    assert contents(state.text) == contents(plain)
    for text in ("grief", "anxiety", "lcsw", documents[0]["name"], documents[-1]["clinic"]):
        assert [a.tolist() for a in state.text.search(text)] == [
            a.tolist() for a in plain.search(text)], text
    assert ids[4] not in state.text.stored_versions()  # inactive: not listed
    snapshot = ProviderTable.load(state.snapshot_path, VOCABULARIES)
    for name in TABLE_FIELDS:
        assert np.array_equal(snapshot.column(name), table.column(name),
                              equal_nan=table.column(name).dtype.kind == "f"), name


def test_id_ranges_cover_every_id_once():
    assert id_ranges(None, None, 2) == []
    assert id_ranges(5, 5, 3) == [(5, 6)]
    for low, high, parts in ((1, 10, 2), (1, 1_000_000, 2), (7, 30, 4), (1, 3, 8)):
        ranges = id_ranges(low, high, parts)
        covered = [i for start, end in ranges for i in range(start, end)]
        assert covered == list(range(low, high + 1))
        sizes = [end - start for start, end in ranges]
        assert max(sizes) - min(sizes) <= 1 and len(ranges) == min(parts, high - low + 1)
