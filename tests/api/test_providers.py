"""Listing endpoints: create, read, list, update, deactivate, verify, audit; auth and isolation."""

import datetime as dt

import pytest

from referral.extensions import db
from referral.geo import lookup_zip
from referral.models import Provider, ProviderAudit
from tests.conftest import assert_error_shape, bearer, new_npi

BASE = "/api/v1/providers"


def test_create_returns_canonical_listing_with_derived_fields(client, make_clinic, listing):
    clinic_id, token = make_clinic()
    payload = listing(first_name="  Mary   Ann ", last_name="O'Brien ", modalities=["dbt", "Cbt"],
                      insurance=["Blue Cross Blue Shield", "aetna"], languages=["Spanish", "EN"],
                      licensed_states=["nh", "MA"], concerns=["OCD", "Substance Use"],
                      zip="02115-1234", provider_type="LCSW")
    response = client.post(BASE, json=payload, headers=bearer(token))
    assert response.status_code == 201, response.json
    body = response.json
    assert body["first_name"] == "Mary Ann" and body["last_name"] == "O'Brien"
    assert body["modalities"] == ["CBT", "DBT"]
    assert body["insurance"] == ["aetna", "bcbs"]
    assert body["languages"] == ["en", "es"]
    assert body["licensed_states"] == ["MA", "NH"]
    assert body["concerns"] == ["ocd", "substance_use"]
    assert body["provider_type"] == "clinical_social_worker" and body["role"] == "therapist"
    assert body["zip"] == "02115" and body["city"] == "Boston"
    place = lookup_zip("02115")
    assert (body["latitude"], body["longitude"]) == (place.latitude, place.longitude)
    assert body["clinic"] == {"id": clinic_id, "name": "Harbor Counseling"}
    assert body["stale"] is False and body["active"] is True
    verified = dt.datetime.fromisoformat(body["last_verified_at"])
    assert dt.datetime.now(dt.UTC) - verified < dt.timedelta(minutes=1)
    # readable by anyone, without a token
    again = client.get(f"{BASE}/{body['id']}")
    assert again.status_code == 200 and again.json["npi"] == payload["npi"]


def test_licensed_states_default_to_the_practice_state(client, make_clinic, listing):
    _, token = make_clinic()
    body = client.post(BASE, json=listing(licensed_states=None, telehealth=False),
                       headers=bearer(token)).json
    assert body["licensed_states"] == ["MA"]


def _errors(response):
    return assert_error_shape(response, 422)["errors"]["json"]


@pytest.mark.parametrize("overrides, field, fragment", [
    ({"npi": "1234567890"}, "npi", "check digit"),
    ({"npi": "12345"}, "npi", "10 digits"),
    ({"npi": 1234567893}, "npi", "string"),
    ({"first_name": "   "}, "first_name", "blank"),
    ({"first_name": "A\u0000B"}, "first_name", "control"),
    ({"last_name": "\u202eevil"}, "last_name", "control"),
    ({"last_name": "x" * 101}, "last_name", "100"),
    ({"provider_type": "astrologer"}, "provider_type", "Unknown provider_type"),
    ({"role": "prescriber"}, "role", "is a therapist"),
    ({"provider_type": "psychiatrist", "role": "therapist", "taxonomy_codes": ["2084P0800X"]},
     "role", "is a prescriber"),
    ({"taxonomy_codes": ["163WP0808X"]}, "taxonomy_codes", "registered nurse"),
    ({"taxonomy_codes": ["2084P0800X"]}, "taxonomy_codes", "make the provider a prescriber"),
    ({"taxonomy_codes": ["207X00000X"]}, "taxonomy_codes", "not a behavioral-health"),
    ({"taxonomy_codes": ["bogus"]}, "taxonomy_codes", "NUCC"),
    ({"modalities": ["CBT", "reiki"]}, "modalities", "Unknown modality"),
    ({"concerns": ["vibes"]}, "concerns", "Unknown concern"),
    ({"age_groups": ["toddler"]}, "age_groups", "Unknown age_group"),
    ({"languages": ["klingon"]}, "languages", "Unknown language"),
    ({"insurance": ["Acme Health"]}, "insurance", "Unknown insurance"),
    ({"licensed_states": ["XX"]}, "licensed_states", "Unknown state"),
    ({"state": "XX"}, "state", "Unknown state"),
    ({"zip": "00000"}, "zip", "not a known US ZIP"),
    ({"zip": "2115"}, "zip", "5 digits"),
    ({"zip": "10001"}, "zip", "is in NY, not MA"),
    ({"fee_min": 200, "fee_max": 100}, "fee_min", "not be more than the highest fee"),
    ({"fee_max": 2500}, "fee_max", "2000"),
    ({"fee_min": -5}, "fee_min", "0"),
    ({"fee_min": 100.5}, "fee_min", "integer"),
    ({"fee_min": True}, "fee_min", "integer"),
    ({"fee_max": None, "fee_min": 100}, "fee_max", "both"),
    ({"wait_days": 400}, "wait_days", "365"),
    ({"telehealth": False, "in_person": False}, "in_person", "both"),
    ({"telehealth": True, "in_person": False, "licensed_states": None, "state": None,
      "zip": None, "address_line1": None}, "licensed_states", "Telehealth needs"),
    ({"address_line1": None}, "address_line1", "in-person"),
    ({"licensed_states": ["NH"]}, "licensed_states", "must be licensed in MA"),
    ({"latitude": 42.3}, "latitude", "both"),
    ({"latitude": 95, "longitude": 0}, "latitude", "90"),
    ({"email": "not-an-email"}, "email", "email"),
    ({"website": "javascript:alert(1)"}, "website", "URL"),
    ({"phone": "12345"}, "phone", "10 digits"),
    ({"gender": "x" * 61}, "gender", "60"),
    ({"favorite_color": "blue"}, "favorite_color", "Unknown field"),
    ({"clinic_id": 5}, "clinic_id", "Unknown field"),
    ({"last_verified_at": "2020-01-01T00:00:00Z"}, "last_verified_at", "Unknown field"),
    ({"modalities": "CBT"}, "modalities", "list"),
    ({"telehealth": "maybe"}, "telehealth", "boolean"),
])
def test_validation_rules(client, make_clinic, listing, overrides, field, fragment):
    _, token = make_clinic()
    response = client.post(BASE, json=listing(**overrides), headers=bearer(token))
    errors = _errors(response)
    assert field in errors, errors
    assert fragment.lower() in str(errors[field]).lower(), errors[field]
    with client.application.app_context():
        assert db.session.query(Provider).count() == 0


def test_nan_latitude_is_rejected(client, make_clinic, listing):
    _, token = make_clinic()
    body = f'{{"npi": "{new_npi()}", "latitude": NaN}}'
    response = client.post(BASE, data=body, content_type="application/json",
                           headers=bearer(token))
    assert "latitude" in _errors(response)


def test_telehealth_only_listing_needs_no_address(client, make_clinic, listing):
    _, token = make_clinic()
    response = client.post(BASE, json=listing(in_person=False, address_line1=None, zip=None,
                                              state=None, licensed_states=["CA", "OR"]),
                           headers=bearer(token))
    assert response.status_code == 201, response.json
    assert response.json["latitude"] is None and response.json["licensed_states"] == ["CA", "OR"]


def test_prescriber_with_psychiatry_code_in_a_later_slot(client, make_clinic, listing):
    _, token = make_clinic()
    response = client.post(BASE, json=listing(
        provider_type="psychiatrist", credentials="MD",
        taxonomy_codes=["207Q00000X", "2084P0800X"]), headers=bearer(token))
    assert response.status_code == 201 and response.json["role"] == "prescriber"


def test_prescribing_psychologist_needs_an_rxp_state(client, make_clinic, listing):
    _, token = make_clinic()
    rxp = listing(provider_type="prescribing_psychologist", taxonomy_codes=["103TP0016X"],
                  address_line1="1 Plaza", state="NM", zip="87501", licensed_states=["NM"])
    assert client.post(BASE, json=rxp, headers=bearer(token)).status_code == 201
    elsewhere = listing(provider_type="prescribing_psychologist", taxonomy_codes=["103TP0016X"])
    assert "taxonomy_codes" in _errors(client.post(BASE, json=elsewhere, headers=bearer(token)))


def test_duplicate_npi_is_a_conflict(client, make_clinic, listing):
    _, token = make_clinic()
    _, other = make_clinic("Other Clinic")
    payload = listing()
    assert client.post(BASE, json=payload, headers=bearer(token)).status_code == 201
    assert_error_shape(client.post(BASE, json=payload, headers=bearer(token)), 409)
    assert_error_shape(client.post(BASE, json=payload, headers=bearer(other)), 409)


# --- authentication and isolation -------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
    {"Authorization": "Bearer mhd_not-a-real-token"}, {"Authorization": "Bearer " + "x" * 5000},
])
def test_writes_need_a_valid_token(client, listing, headers):
    response = client.post(BASE, json=listing(), headers=headers)
    assert_error_shape(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unauthenticated_invalid_body_is_401_not_422(client):
    assert_error_shape(client.post(BASE, json={"junk": 1}), 401)


def test_revoked_token_is_refused(app, client, make_clinic, listing):
    from referral.auth import revoke_token
    from referral.models import ApiToken

    _, token = make_clinic()
    with app.app_context():
        revoke_token(db.session.query(ApiToken).one())
        db.session.commit()
    assert_error_shape(client.post(BASE, json=listing(), headers=bearer(token)), 401)


def test_tokens_are_stored_only_as_hashes(app, make_clinic):
    from referral.models import ApiToken

    _, token = make_clinic()
    with app.app_context():
        row = db.session.query(ApiToken).one()
        assert token not in (row.token_hash, row.prefix) and len(row.token_hash) == 64
        assert token.startswith(row.prefix)


def test_a_clinic_cannot_touch_another_clinics_listing(client, make_clinic, create):
    _, owner = make_clinic("Owner")
    _, intruder = make_clinic("Intruder")
    provider = create(owner)
    url = f"{BASE}/{provider['id']}"
    assert_error_shape(client.patch(url, json={"wait_days": 1}, headers=bearer(intruder)), 404)
    assert_error_shape(client.delete(url, headers=bearer(intruder)), 404)
    assert_error_shape(client.post(url + "/verify", headers=bearer(intruder)), 404)
    assert_error_shape(client.get(url + "/audit", headers=bearer(intruder)), 404)
    unchanged = client.get(url).json
    assert unchanged["wait_days"] == provider["wait_days"] and unchanged["active"]


# --- update, deactivate, verify, audit ----------------------------------------------------

def test_patch_changes_only_given_fields_and_checks_the_merged_listing(client, make_clinic,
                                                                       create):
    _, token = make_clinic()
    provider = create(token)
    url = f"{BASE}/{provider['id']}"
    response = client.patch(url, json={"modalities": ["emdr"], "wait_days": None},
                            headers=bearer(token))
    assert response.status_code == 200, response.json
    assert response.json["modalities"] == ["EMDR"] and response.json["wait_days"] is None
    assert response.json["fee_max"] == provider["fee_max"]
    # fee_min above the stored fee_max breaks a cross-field rule
    bad = client.patch(url, json={"fee_min": provider["fee_max"] + 10}, headers=bearer(token))
    assert "fee_min" in assert_error_shape(bad, 422)["errors"]
    assert_error_shape(client.patch(url, json={"npi": new_npi()}, headers=bearer(token)), 422)
    assert client.get(url).json["fee_min"] == provider["fee_min"]


def test_patch_zip_moves_the_coordinates(client, make_clinic, create):
    _, token = make_clinic()
    provider = create(token)
    response = client.patch(f"{BASE}/{provider['id']}",
                            json={"zip": "10001", "state": "NY", "licensed_states": ["NY"]},
                            headers=bearer(token))
    assert response.status_code == 200, response.json
    place = lookup_zip("10001")
    assert (response.json["latitude"], response.json["longitude"]) == (place.latitude,
                                                                      place.longitude)
    assert response.json["city"] == "Boston"  # an explicit city is the clinic's to change


def test_deactivate_hides_the_listing_and_patch_can_restore_it(client, make_clinic, create):
    clinic_id, token = make_clinic()
    provider = create(token)
    url = f"{BASE}/{provider['id']}"
    response = client.delete(url, headers=bearer(token))
    assert response.status_code == 200 and response.json["active"] is False
    assert_error_shape(client.get(url), 404)
    assert client.get(BASE).json["total"] == 0
    mine = client.get("/api/v1/clinics/me/providers", headers=bearer(token)).json
    assert [p["id"] for p in mine["items"]] == [provider["id"]]
    restored = client.patch(url, json={"active": True}, headers=bearer(token))
    assert restored.json["active"] is True and client.get(url).status_code == 200


def test_audit_trail_records_who_changed_what(app, client, make_clinic, create):
    clinic_id, token = make_clinic()
    provider = create(token)
    url = f"{BASE}/{provider['id']}"
    client.patch(url, json={"wait_days": 30}, headers=bearer(token))
    client.post(url + "/verify", headers=bearer(token))
    client.delete(url, headers=bearer(token))
    trail = client.get(url + "/audit", headers=bearer(token)).json
    assert [entry["action"] for entry in trail] == ["deactivate", "verify", "update", "create"]
    assert all(entry["clinic_id"] == clinic_id for entry in trail)
    update = trail[2]["changes"]
    assert update["wait_days"] == {"old": provider["wait_days"], "new": 30}
    assert "fee_min" not in update
    assert trail[3]["changes"]["npi"] == {"old": None, "new": provider["npi"]}
    with app.app_context():
        assert db.session.query(ProviderAudit).count() == 4


def test_a_patch_that_changes_nothing_writes_no_audit(app, client, make_clinic, create):
    _, token = make_clinic()
    provider = create(token)
    client.patch(f"{BASE}/{provider['id']}", json={"wait_days": provider["wait_days"]},
                 headers=bearer(token))
    with app.app_context():
        assert db.session.query(ProviderAudit).count() == 1


def test_stale_listings_and_verification(app, client, make_clinic, create):
    _, token = make_clinic()
    fresh, old, older = create(token), create(token), create(token)
    now = dt.datetime.now(dt.UTC)
    with app.app_context():
        db.session.get(Provider, old["id"]).last_verified_at = now - dt.timedelta(days=91)
        db.session.get(Provider, older["id"]).last_verified_at = now - dt.timedelta(days=400)
        db.session.commit()
    stale = client.get("/api/v1/clinics/me/stale", headers=bearer(token)).json
    assert [p["id"] for p in stale["items"]] == [older["id"], old["id"]]
    assert all(p["stale"] for p in stale["items"]) and stale["total"] == 2
    assert client.get(f"{BASE}/{fresh['id']}").json["stale"] is False
    verified = client.post(f"{BASE}/{old['id']}/verify", headers=bearer(token))
    assert verified.status_code == 200 and verified.json["stale"] is False
    stale = client.get("/api/v1/clinics/me/stale", headers=bearer(token)).json
    assert [p["id"] for p in stale["items"]] == [older["id"]]


def test_list_filters_and_pagination(client, make_clinic, create):
    clinic_id, token = make_clinic()
    create(token)
    create(token, provider_type="psychiatrist", taxonomy_codes=["2084P0800X"], credentials="MD")
    create(token, address_line1="5 Broadway", zip="10001", state="NY", licensed_states=["NY"],
           accepting_new_patients=False)
    assert client.get(BASE + "?role=prescriber").json["total"] == 1
    assert client.get(BASE + "?state=ny").json["total"] == 1
    assert client.get(BASE + "?accepting_new_patients=false").json["total"] == 1
    assert client.get(BASE + f"?clinic_id={clinic_id}").json["total"] == 3
    page = client.get(BASE + "?per_page=2&page=2").json
    assert (page["total"], page["page"], page["per_page"], len(page["items"])) == (3, 2, 2, 1)


@pytest.mark.parametrize("query", ["per_page=101", "page=0", "role=wizard", "state=ZZ",
                                   "zip=abc", "bogus=1", "accepting_new_patients=perhaps",
                                   "clinic_id=-1", "per_page=1e9"])
def test_bad_list_parameters_are_422(client, query):
    assert_error_shape(client.get(f"{BASE}?{query}"), 422)
