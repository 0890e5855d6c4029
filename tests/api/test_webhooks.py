"""Webhook endpoints through the API: create (secret once), list, delete, bad input."""

from __future__ import annotations

import pytest

from referral.extensions import db
from referral.models import WebhookEndpoint
from tests.conftest import assert_error_shape, bearer

HOOKS = "/api/v1/clinics/me/webhooks"


@pytest.fixture
def token(make_clinic):
    return make_clinic("Hooked Clinic")[1]


def test_create_list_delete_and_the_secret_is_shown_once(app, client, token, make_clinic):
    created = client.post(HOOKS, json={"url": "http://127.0.0.1:9/in",
                                       "event_types": ["referral.created"],
                                       "description": "  EHR   bridge "},
                          headers=bearer(token))
    assert created.status_code == 201
    body = created.json
    assert body["secret"].startswith("whsec_") and body["description"] == "EHR bridge"
    assert body["event_types"] == ["referral.created"]
    listed = client.get(HOOKS, headers=bearer(token)).json
    assert [hook["id"] for hook in listed] == [body["id"]] and "secret" not in listed[0]
    with app.app_context():
        stored = db.session.get(WebhookEndpoint, body["id"])
        assert body["secret"] not in stored.secret_ciphertext  # encrypted at rest
    _, other = make_clinic("Other Clinic")
    assert client.get(HOOKS, headers=bearer(other)).json == []
    assert_error_shape(client.delete(f"{HOOKS}/{body['id']}", headers=bearer(other)), 404)
    assert client.delete(f"{HOOKS}/{body['id']}", headers=bearer(token)).status_code == 200
    assert client.get(HOOKS, headers=bearer(token)).json == []
    assert_error_shape(client.delete(f"{HOOKS}/{body['id']}", headers=bearer(token)), 404)
    all_types = client.post(HOOKS, json={"url": "http://127.0.0.1:9/all"},
                            headers=bearer(token)).json
    assert set(all_types["event_types"]) == {"referral.created", "referral.status_changed",
                                             "referral.message", "listing.reminder",
                                             "listing.reported", "referral.reminder"}


@pytest.mark.parametrize("body, field", [
    ({"url": "http://93.184.216.34/in"}, "url"),  # plain http off this machine
    ({"url": "ftp://127.0.0.1/in"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": "http://user:pw@127.0.0.1/in"}, "url"),
    ({"url": "https://no-such-host.invalid/in"}, "url"),
    ({"url": ""}, "url"),
    ({}, "url"),
    ({"url": "http://127.0.0.1/in", "event_types": ["referral.deleted"]}, "event_types"),
    ({"url": "http://127.0.0.1/in", "event_types": []}, "event_types"),
    ({"url": "http://127.0.0.1/in", "secret": "mine"}, "secret"),
    ({"url": "http://127.0.0.1/\x00"}, "url"),
])
def test_bad_endpoints_are_refused_in_the_error_shape(client, token, body, field):
    response = client.post(HOOKS, json=body, headers=bearer(token))
    assert field in str(assert_error_shape(response, 422)["errors"])


def test_production_refuses_private_addresses(database, make_clinic, app):
    from cryptography.fernet import Fernet

    from tests.conftest import make_app

    production = make_app(database, REFERRAL_ENV="production",
                          ENCRYPTION_KEYS=Fernet.generate_key().decode())
    _, token = make_clinic("Prod Clinic")
    client = production.test_client()
    for url in ("https://127.0.0.1/in", "https://10.0.0.8/in", "https://169.254.169.254/x",
                "http://93.184.216.34/in"):
        response = client.post(HOOKS, json={"url": url}, headers=bearer(token))
        assert "url" in assert_error_shape(response, 422)["errors"], url
    assert client.post(HOOKS, json={"url": "https://93.184.216.34/in"},
                       headers=bearer(token)).status_code == 201


def test_a_clinic_keeps_at_most_ten_endpoints(client, token):
    for number in range(10):
        assert client.post(HOOKS, json={"url": f"http://127.0.0.1:9/{number}"},
                           headers=bearer(token)).status_code == 201
    assert_error_shape(client.post(HOOKS, json={"url": "http://127.0.0.1:9/x"},
                                   headers=bearer(token)), 409)


def test_webhooks_need_a_token(client):
    assert_error_shape(client.get(HOOKS), 401)
    assert_error_shape(client.post(HOOKS, json={"url": "http://127.0.0.1/in"}), 401)
