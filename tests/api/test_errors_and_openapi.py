"""One error shape everywhere, no 500 on hostile input, and a valid OpenAPI document."""

import json

import pytest
from openapi_spec_validator import validate

from tests.conftest import assert_error_shape, bearer, make_app


def test_openapi_document_is_valid_and_generated(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json
    validate(spec)
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path in ("/api/v1/providers", "/api/v1/providers/{provider_id}",
                 "/api/v1/providers/bulk", "/api/v1/providers/{provider_id}/verify",
                 "/api/v1/clinics/me/stale"):
        assert path in paths
    assert paths["/api/v1/providers"]["post"]["security"] == [{"clinicToken": []}]
    listing = spec["components"]["schemas"]["Listing"]
    assert "npi" in listing["required"] and listing["additionalProperties"] is False
    assert "CBT-I" in listing["properties"]["modalities"]["items"]["enum"]
    bulk_body = paths["/api/v1/providers/bulk"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/csv", "multipart/form-data"} <= set(bulk_body)


@pytest.mark.parametrize("method, path, status", [
    ("get", "/api/v1/nowhere", 404),
    ("put", "/api/v1/providers", 405),
    ("get", "/api/v1/providers/abc", 404),
    ("get", "/api/v1/providers/99999999999999999999", 404),
])
def test_http_errors_use_the_error_shape(client, method, path, status):
    assert_error_shape(getattr(client, method)(path), status)


def test_too_large_bodies_are_413(app, client, make_clinic):
    _, token = make_clinic()
    body = "[" + ",".join(["{}"] * 10) + "]"
    app.config["MAX_CONTENT_LENGTH"] = 10
    try:
        response = client.post("/api/v1/providers/bulk", data=body,
                               content_type="application/json", headers=bearer(token))
        assert_error_shape(response, 413)
    finally:
        app.config["MAX_CONTENT_LENGTH"] = 5 * 1024 * 1024


def test_unexpected_errors_are_500_in_the_error_shape_without_a_trace(database):
    app = make_app(database, TESTING=False)  # as in production: no exception propagation

    @app.route("/api/v1/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/api/v1/boom")
    body = assert_error_shape(response, 500)
    assert "secret" not in response.get_data(as_text=True) and "Traceback" not in body["message"]


HOSTILE_BODIES = [
    None, [], "string", 12, {"npi": None}, {"npi": ["1234567893"]}, {"npi": {"$gt": ""}},
    {"first_name": "\u0000\u202e"}, {"fee_min": 10 ** 40}, {"fee_min": "1e3"},
    {"modalities": [None, 3, {}]}, {"licensed_states": "MA"}, {"zip": 2115},
    {"latitude": "north"}, {"wait_days": -1}, {"concerns": [["nested"]]},
    {"npi": "1234567893", "first_name": "A" * 100_000},
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_bodies_never_500(client, make_clinic, create, body):
    _, token = make_clinic()
    provider = create(token)
    data = json.dumps(body)
    for method, url in (("post", "/api/v1/providers"),
                        ("patch", f"/api/v1/providers/{provider['id']}"),
                        ("post", "/api/v1/providers/bulk")):
        response = getattr(client, method)(url, data=data, content_type="application/json",
                                           headers=bearer(token))
        assert response.status_code < 500, (method, url, response.json)
        if response.status_code >= 400:
            assert_error_shape(response, response.status_code)
    bulk = client.post("/api/v1/providers/bulk", data=json.dumps([body]),
                       content_type="application/json", headers=bearer(token))
    assert bulk.status_code in (200, 422)


def test_vocabularies_endpoint(client):
    body = client.get("/api/v1/vocabularies").json
    assert {"value": "CBT-I"}.items() <= body["modality"][9].items()
    concerns = {c["value"]: c["modalities"] for c in body["concern"]}
    assert concerns["ocd"] == ["ERP", "CBT"]
    assert {"value": "bcbs", "label": "Blue Cross Blue Shield"} in body["insurance"]


def test_clinic_me(client, make_clinic):
    clinic_id, token = make_clinic("Northside Practice")
    body = client.get("/api/v1/clinics/me", headers=bearer(token)).json
    assert body["id"] == clinic_id and body["name"] == "Northside Practice"
    assert_error_shape(client.get("/api/v1/clinics/me"), 401)


def test_a_json_body_is_required_where_the_document_says_so(client, make_clinic, create):
    _, token = make_clinic()
    provider = create(token)
    for method, url in (("patch", f"/api/v1/providers/{provider['id']}"),
                        ("post", "/api/v1/clinics/me/tokens"),
                        ("post", "/api/v1/referrals")):
        body = assert_error_shape(getattr(client, method)(url, headers=bearer(token)), 422)
        assert body["errors"] == {"json": {"_schema": [
            "Send a JSON object as the body (Content-Type: application/json)."]}}
    document = client.get("/api/v1/openapi.json").json
    assert document["paths"]["/api/v1/clinics/me/tokens"]["post"]["requestBody"]["required"]


def test_405_names_the_allowed_methods(client):
    response = client.put("/api/v1/vocabularies")
    assert_error_shape(response, 405)
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_overlong_urls_answer_414_in_the_error_shape(client):
    body = assert_error_shape(client.get("/api/v1/providers/search?q=" + "a" * 4100), 414)
    assert body["message"] == "The URL is longer than 4,094 bytes."
    assert client.get("/api/v1/vocabularies?" + "a" * 4000).status_code != 414


def test_enums_in_the_document_are_what_validation_accepts(client):
    document = client.get("/api/v1/openapi.json").json
    parameters = document["paths"]["/api/v1/match"]["get"]["parameters"]
    prescriber_type = next(p for p in parameters if p["name"] == "prescriber_type")
    for value in prescriber_type["schema"]["enum"]:
        answer = client.get("/api/v1/match", query_string={"state": "MA",
                                                           "prescriber_type": value})
        assert answer.status_code == 200, (value, answer.json)
    assert "psychologist" not in prescriber_type["schema"]["enum"]


def test_every_error_response_in_the_document_has_the_error_schema(client):
    document = client.get("/api/v1/openapi.json").json
    assert set(document["components"]["schemas"]["Error"]["required"]) == {
        "code", "status", "message", "errors"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "post", "patch", "delete"):
                continue
            codes = set(operation["responses"])
            assert {"414", "429", "500", "503"} <= codes, (method, path)
            for code, response in operation["responses"].items():
                if code[0] in "45":
                    if "$ref" in response:
                        name = response["$ref"].rsplit("/", 1)[1]
                        response = document["components"]["responses"][name]
                    schema = response["content"]["application/json"]["schema"]
                    assert schema["$ref"].startswith("#/components/schemas/"), (path, code)
    bulk = document["paths"]["/api/v1/providers/bulk"]["post"]["responses"]
    assert bulk["413"] and bulk["409"]
    assert bulk["422"]["content"]["application/json"]["schema"]["$ref"].endswith("BulkError")


def test_a_text_search_of_an_empty_directory_answers_200(client):
    answer = client.get("/api/v1/providers/search", query_string={"q": "zzqqzz"})
    assert answer.status_code == 200 and answer.json["total"] == 0
