"""Listing versions over HTTP: the ETag of one listing, If-Match on its writes (412 when
stale), and 409 in the error shape when another change is saved first."""

from __future__ import annotations

import logging

import pytest

from referral.extensions import db
from referral.models import Clinic
from tests.conftest import assert_error_shape, bearer
from tests.interleave import another_writer_first

BASE = "/api/v1/providers"
SECRET_BIO = "Marrowdell-secret-bio of Ottoline"


@pytest.fixture
def owned(make_clinic, create):
    """``(clinic_id, token, listing)``: a clinic's listing with fees 50-150."""
    clinic_id, token = make_clinic()
    return clinic_id, token, create(token, fee_min=50, fee_max=150, bio=SECRET_BIO)


def test_one_listing_has_its_version_as_etag(client, owned):
    _, token, created = owned
    url = f"{BASE}/{created['id']}"
    assert client.get(url).headers["ETag"] == '"1"'
    patched = client.patch(url, json={"wait_days": 3}, headers=bearer(token))
    assert patched.status_code == 200 and patched.headers["ETag"] == '"2"'
    verified = client.post(f"{url}/verify", headers=bearer(token))
    assert verified.headers["ETag"] == '"3"'
    assert client.get(url).headers["ETag"] == '"3"'


@pytest.mark.parametrize("if_match", ['"2"', '"0"', 'W/"1"', '"one"', '"1x"', '"99999999999999"',
                                      '""', ",", ""])
@pytest.mark.parametrize("method, path, body", [
    ("PATCH", "", {"wait_days": 9}), ("DELETE", "", None), ("POST", "/verify", None)])
def test_a_write_naming_another_version_is_412_and_writes_nothing(client, owned, method, path,
                                                                   body, if_match):
    _, token, created = owned
    url = f"{BASE}/{created['id']}"
    response = client.open(f"{url}{path}", method=method, json=body,
                           headers={**bearer(token), "If-Match": if_match})
    answer = assert_error_shape(response, 412)
    assert "If-Match" in answer["errors"]["headers"]
    shown = client.get(url)
    assert shown.headers["ETag"] == '"1"'
    assert shown.json["wait_days"] == created["wait_days"] and shown.json["active"] is True


@pytest.mark.parametrize("if_match", ['"1"', '"7", "1"', "*"])
def test_a_write_naming_the_current_version_or_any_is_made(client, owned, if_match):
    _, token, created = owned
    url = f"{BASE}/{created['id']}"
    response = client.patch(url, json={"wait_days": 9},
                            headers={**bearer(token), "If-Match": if_match})
    assert response.status_code == 200, response.json
    assert response.json["wait_days"] == 9 and response.headers["ETag"] == '"2"'


def test_a_patch_after_another_change_was_saved_is_409_and_logs_nothing_of_the_listing(
        app, client, owned, caplog):
    from referral import listings

    clinic_id, token, created = owned
    url = f"{BASE}/{created['id']}"

    def other_writer():
        listings.update_provider(db.session.get(Clinic, clinic_id), created["id"],
                                 {"fee_max": 80})

    caplog.set_level(logging.DEBUG)
    with another_writer_first(app, other_writer):
        response = client.patch(url, json={"fee_min": 100}, headers=bearer(token))
    body = assert_error_shape(response, 409)
    assert body["message"] == ("Another change to this listing was saved first; nothing was "
                               "written. Reload and try again.")
    shown = client.get(url).json
    assert (shown["fee_min"], shown["fee_max"]) == (50, 80)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "StaleDataError (table provider)" in logged
    assert SECRET_BIO not in logged and "Failing row" not in logged


def test_the_openapi_document_describes_etag_and_if_match(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    one = paths["/api/v1/providers/{provider_id}"]
    assert "ETag" in one["get"]["responses"]["200"]["headers"]
    for operation in (one["patch"], one["delete"],
                      paths["/api/v1/providers/{provider_id}/verify"]["post"]):
        headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
        assert "If-Match" in headers
        assert {"409", "412"} <= set(operation["responses"])
        assert "ETag" in operation["responses"]["200"]["headers"]
