"""The search index follows committed changes: outbox, after-commit sync, repair, concurrency."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import re

import pytest

from referral.extensions import db
from referral.models import Provider, ProviderChange
from referral.search_sync import check_index, latest_change
from referral.services import search_service
from tests.conftest import bearer, make_app, new_npi

SEARCH = "/api/v1/providers/search"


def found(client, text, **params):
    body = client.get(SEARCH, query_string={"q": text, **params}).json
    return [item["id"] for item in body["items"]]


def test_every_committed_change_reaches_search(app, client, make_clinic, create):
    _, token = make_clinic()
    provider = create(token, first_name="Zephyrine", last_name="Quillfeather")
    assert found(client, "Quillfeather") == [provider["id"]]
    url = f"/api/v1/providers/{provider['id']}"
    client.patch(url, json={"last_name": "Marchbanks"}, headers=bearer(token))
    assert found(client, "Quillfeather") == []
    assert found(client, "Zephyrine Marchbanks") == [provider["id"]]
    client.patch(url, json={"fee_min": 40, "fee_max": 60}, headers=bearer(token))
    assert found(client, "Marchbanks", max_fee=60) == [provider["id"]]  # the whole range
    item = client.get(SEARCH, query_string={"q": "Marchbanks"}).json["items"][0]
    assert (item["fee_min"], item["fee_max"]) == (40, 60)  # not an earlier cached rendering
    client.delete(url, headers=bearer(token))
    assert found(client, "Marchbanks") == []
    client.patch(url, json={"active": True}, headers=bearer(token))
    assert found(client, "Marchbanks") == [provider["id"]]
    with app.app_context():
        changes = db.session.scalars(db.select(ProviderChange.provider_id)).all()
        assert changes == [provider["id"]] * 5
        state = search_service(app).state
        with db.engine.connect() as connection:
            assert state.text.position() == latest_change(connection)


def test_a_write_returns_before_the_text_index_is_updated(app, client, make_clinic, create):
    _, token = make_clinic()
    provider = create(token, first_name="Oriel", last_name="Vantongeren")
    service = search_service(app)
    assert service.settle(timeout=30)
    state = service.state
    with state.applying:  # the text index is busy in this process: the write must not wait
        response = client.patch(f"/api/v1/providers/{provider['id']}",
                                json={"last_name": "Hollowbrook"}, headers=bearer(token))
        assert response.status_code == 200
        with app.app_context(), db.engine.connect() as connection:
            assert state.text.position() < latest_change(connection)  # not applied inline
    assert service.settle(timeout=30)
    with app.app_context(), db.engine.connect() as connection:
        assert state.text.position() == latest_change(connection)  # applied in the background
    assert state.text.search("hollowbrook")[0].tolist() == [provider["id"]]


def test_a_text_search_reads_the_writes_before_it(app, client, make_clinic, create):
    _, token = make_clinic()
    provider = create(token, first_name="Oriel", last_name="Quennevais")
    for name in ("Ashdownfield", "Brackenthorpe", "Cullerwick"):
        client.patch(f"/api/v1/providers/{provider['id']}", json={"last_name": name},
                     headers=bearer(token))
        assert found(client, name) == [provider["id"]]  # whether or not the applier finished


def test_no_change_row_without_a_change(app, client, make_clinic, create):
    _, token = make_clinic()
    provider = create(token)
    client.patch(f"/api/v1/providers/{provider['id']}", json={"wait_days": provider["wait_days"]},
                 headers=bearer(token))
    with app.app_context():
        assert db.session.query(ProviderChange).count() == 1


def test_a_failed_bulk_upload_logs_no_change(app, client, make_clinic, listing):
    _, token = make_clinic()
    client.post("/api/v1/providers/bulk", json=[listing(), listing(zip="99999")],
                headers=bearer(token))
    with app.app_context():
        assert db.session.query(ProviderChange).count() == 0


def test_freshness_follows_verification(app, client, make_clinic, create):
    _, token = make_clinic()
    provider = create(token, last_name="Thistlewood")
    with app.app_context():
        db.session.get(Provider, provider["id"]).last_verified_at = (
            dt.datetime.now(dt.UTC) - dt.timedelta(days=120))
        db.session.commit()
    item = client.get(SEARCH, query_string={"q": "Thistlewood"}).json["items"][0]
    assert item["stale"] is True
    client.post(f"/api/v1/providers/{provider['id']}/verify", headers=bearer(token))
    item = client.get(SEARCH, query_string={"q": "Thistlewood"}).json["items"][0]
    assert item["stale"] is False


def test_check_index_reports_and_repairs_a_broken_index(app, client, runner, make_clinic,
                                                       create):
    _, token = make_clinic()
    kept = create(token, last_name="Brightwater")
    lost = create(token, last_name="Fenwick")
    changed = create(token, last_name="Ashgrove")
    assert search_service(app).settle(timeout=30)  # the applier is done before we break it
    state = search_service(app).state
    writer = state.text._open(state.text.current_name()).writer()
    writer.delete_by_term("pid", lost["id"])
    writer.update_document(pid=changed["id"], name="Wrong Name", credentials="", clinic="",
                           bio="", version="old")
    writer.add_document(pid=999_999, name="Ghost Listing", credentials="", clinic="", bio="",
                        version="x")
    writer.commit()
    assert found(client, "Fenwick") == [] and found(client, "Ghost") == []
    report = runner.invoke(args=["check-index", "--no-repair"])
    assert report.exit_code == 1
    assert re.search(rf"missing: 1 \({lost['id']}\)", report.output)
    assert re.search(r"extra: 1 \(999999\)", report.output)
    assert re.search(rf"outdated: 1 \({changed['id']}\)", report.output)
    repaired = runner.invoke(args=["check-index"])
    assert repaired.exit_code == 0 and "Repaired 3" in repaired.output
    assert found(client, "Fenwick") == [lost["id"]]
    assert found(client, "Ashgrove") == [changed["id"]]
    assert found(client, "Brightwater") == [kept["id"]]
    again = runner.invoke(args=["check-index"])
    assert "matches the database" in again.output


def test_reindex_rebuilds_from_the_database(app, client, runner, make_clinic, create):
    _, token = make_clinic()
    provider = create(token, last_name="Larkspur")
    result = runner.invoke(args=["reindex"])
    assert result.exit_code == 0 and "Indexed 1 active providers" in result.output
    assert found(client, "Larkspur") == [provider["id"]]


def listing_payload(npi: str, last_name: str) -> dict:
    return {"npi": npi, "first_name": "Concurrent", "last_name": last_name,
            "provider_type": "counselor", "modalities": ["CBT"], "telehealth": True,
            "in_person": True, "address_line1": "1 Main St", "state": "MA", "zip": "02115",
            "licensed_states": ["MA"], "fee_min": 100, "fee_max": 120}


def _write_listings(database, index_dir, token, jobs, results):
    app = make_app(database, INDEX_DIR=index_dir)
    client = app.test_client()
    statuses = []
    for npi, name in jobs:
        response = client.post("/api/v1/providers", json=listing_payload(npi, name),
                               headers=bearer(token))
        statuses.append(response.status_code)
        if response.status_code == 201:
            patched = client.patch(f"/api/v1/providers/{response.json['id']}",
                                   json={"last_name": name + "x"}, headers=bearer(token))
            statuses.append(patched.status_code)
    results.put(statuses)


@pytest.mark.system
def test_concurrent_writers_in_several_processes_lose_nothing(app, database, make_clinic):
    _, token = make_clinic()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    names = [f"Writer{chr(97 + w)}{chr(97 + i)}q" for w in range(3) for i in range(8)]
    jobs = [[(new_npi(), name) for name in names[w * 8:(w + 1) * 8]] for w in range(3)]
    workers = [context.Process(target=_write_listings,
                               args=(database, app.config["INDEX_DIR"], token, job, results))
               for job in jobs]
    for worker in workers:
        worker.start()
    statuses = [status for _ in workers for status in results.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=30)
    assert statuses == [201, 200] * 24 or sorted(set(statuses)) == [200, 201], statuses
    assert len(statuses) == 48
    state = search_service(app).state
    with app.app_context(), db.engine.connect() as connection:
        report = check_index(state, connection, repair=False)
    assert (report["missing"], report["extra"], report["outdated"]) == ([], [], [])
    client = app.test_client()
    for name in names:
        items = client.get(SEARCH, query_string={"q": name + "x"}).json["items"]
        exact = [item for item in items if item["last_name"] == name + "x"]
        assert len(exact) == 1 and items[0] == exact[0], name  # exact match ranks first


def test_warm_up_loads_the_table_up_to_the_change_log(app, client, make_clinic, create):
    """A gunicorn worker's warm-up (``post_worker_init``) leaves the table current."""
    from referral.services import warm_up

    _, token = make_clinic()
    provider = create(token, first_name="Oriel", last_name="Warmingham")
    state = search_service(app).state
    state.forget()
    warm_up(app)
    assert state.table is not None
    with app.app_context(), db.engine.connect() as connection:
        assert state.table.position == latest_change(connection) > 0
    assert provider["id"] in state.table.columns["id"].tolist()


def test_a_failed_warm_up_is_logged_and_left_to_the_first_search(app, client, make_clinic,
                                                                 create, monkeypatch, caplog):
    """A warm-up that fails (here the index cannot be read) does not stop the worker: it
    logs the failure's type and the first search loads the table itself."""
    from referral.services import warm_up

    _, token = make_clinic()
    provider = create(token, first_name="Oriel", last_name="Coldstart")
    service = search_service(app)
    service.state.forget()

    def unreadable(*args, **kwargs):
        raise OSError("index unreadable")

    with monkeypatch.context() as patched:
        patched.setattr(type(service), "refresh", unreadable)
        warm_up(app)
    assert service.state.table is None
    assert "search table not loaded before the first request (OSError)" in caplog.text
    found = client.get(SEARCH, query_string={"q": "Coldstart"}).json["items"]
    assert [item["id"] for item in found] == [provider["id"]]
