"""Every error under /fhir is an OperationOutcome with the right HTTP status and
``application/fhir+json`` (404, 400, 405, 406, 410, 429, 500, 503); unknown parameters
are ignored unless ``Prefer: handling=strict``; the JSON API and pages keep their own
error shapes; CORS allows public reads."""

from __future__ import annotations

import pytest

from tests.conftest import assert_error_shape, make_app

STRICT = {"Prefer": "handling=strict"}


def issue_code(body: dict) -> str:
    """The code of an OperationOutcome's first issue."""
    return body["issue"][0]["code"]


@pytest.mark.parametrize("path", [
    "/fhir/Practitioner/999999", "/fhir/Practitioner/not-a-number", "/fhir/Organization/999999",
    "/fhir/Patient/1", "/fhir/Patient?name=x", "/fhir/Practitioner/1/_history",
    "/fhir/CodeSystem/nothing", "/fhir", "/fhir/"])
def test_unknown_things_are_404_operation_outcomes(fhir, path):
    assert issue_code(fhir.get(path, status=404)) == "not-found"


@pytest.mark.parametrize("query, expression", [
    ("Practitioner?_count=lots", "_count"),
    ("Practitioner?_lastUpdated=yesterday", None),
    ("Practitioner?_lastUpdated=2026-13-40", None),
    ("Practitioner?name:missing=true", "name:missing"),
    ("Practitioner?family:text=x", "family:text"),
    ("PractitionerRole?specialty:not=1041C0700X", "specialty:not"),
    ("PractitionerRole?specialty=a|b|c", None),
    ("PractitionerRole?_cursor=garbage", "_cursor"),
    ("PractitionerRole?specialty.name=x", "specialty.name"),
    ("PractitionerRole?organization.partof.name=x", "organization.partof.name"),
    ("PractitionerRole?practitioner:exact.name=x", "practitioner:exact.name"),
    ("Location?near=north", "near"),
    ("Location?near=95|10|5|km", "near"),
    ("Location?near=42|-71|5|furlongs", "near"),
    ("Location?near=42|-71|900|km", "near"),
    ("Location?near=42|-71|5&near=40|-70|5", "near"),
    ("Practitioner?_total=sometimes", "_total"),
])
def test_bad_parameters_are_400_operation_outcomes(fhir, query, expression):
    body = fhir.get(f"/fhir/{query}", status=400)
    assert issue_code(body) in ("invalid", "not-supported")
    if expression:
        assert body["issue"][0]["expression"] == [expression]


def test_unknown_parameters_are_ignored_unless_handling_is_strict(fhir, rows):
    lenient = fhir.get("/fhir/Practitioner?colour=blue&_sort=family&_count=5"
                       "&_include=Practitioner:nothing")
    assert lenient["total"] == len(rows.public())
    outcome = [e["resource"] for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1 and outcome[0]["issue"][0]["severity"] == "warning"
    for ignored in ("colour", "_sort", "_include=Practitioner:nothing"):
        assert ignored in outcome[0]["issue"][0]["diagnostics"]
    self_link = lenient["link"][0]["url"]
    assert "colour" not in self_link and "_sort" not in self_link and "_count=5" in self_link
    strict = fhir.get("/fhir/Practitioner?colour=blue&_count=5", status=400, headers=STRICT)
    assert issue_code(strict) == "not-supported" and "colour" in strict["issue"][0][
        "diagnostics"]
    fhir.get("/fhir/PractitionerRole?location.colour=blue", status=400, headers=STRICT)
    fhir.get("/fhir/Practitioner?_include=Practitioner:nothing", status=400, headers=STRICT)
    known = fhir.get("/fhir/Practitioner?family=Ga&_count=5", headers=STRICT)
    assert not [e for e in known.get("entry", []) if e["search"]["mode"] == "outcome"]


def test_deactivated_listing_is_410(fhir, corpus):
    body = fhir.get(f"/fhir/PractitionerRole/{corpus.edge['gone']}", status=410)
    assert issue_code(body) == "deleted"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_writes_are_405_operation_outcomes(fhir, corpus, method):
    for path in (f"/fhir/Practitioner/{corpus.edge['special']}", "/fhir/Practitioner",
                 "/fhir/metadata"):
        response = getattr(fhir.client, method)(path, json={"resourceType": "Practitioner"})
        assert response.status_code == 405, (method, path, response.get_data(as_text=True))
        assert response.mimetype == "application/fhir+json"
        assert response.get_json(force=True)["issue"][0]["code"] == "not-supported"
        assert response.headers["Allow"] == "GET, HEAD"


def test_search_by_post_is_the_same_search(fhir, rows):
    response = fhir.client.post("/fhir/Practitioner/_search", data={"family": "Ga",
                                                                     "_count": "200"})
    assert response.status_code == 200 and response.mimetype == "application/fhir+json"
    found = {int(e["resource"]["id"]) for e in response.get_json(force=True)["entry"]}
    assert found == {p.id for p in rows.public() if p.last_name.lower().startswith("ga")}


def test_other_formats_are_406(fhir):
    assert issue_code(fhir.get("/fhir/Practitioner?_format=xml", status=406)) == "not-supported"
    fhir.get("/fhir/metadata", status=406, headers={"Accept": "application/fhir+xml"})
    fhir.get("/fhir/metadata", headers={"Accept": "application/fhir+json"})
    fhir.get("/fhir/metadata", headers={"Accept": "text/html,*/*;q=0.8"})


def test_rate_limit_is_a_429_operation_outcome(corpus):
    from tests.fhir.conftest import FhirClient

    limited = make_app((corpus.app.config["SQLALCHEMY_DATABASE_URI"],
                        {k: v for k, v in corpus.app.config["SQLALCHEMY_ENGINE_OPTIONS"].items()
                         if k == "connect_args"}),
                       RATE_LIMITS=True, RATELIMIT_SEARCH="2 per minute")
    client = FhirClient(limited)
    here = {"REMOTE_ADDR": "127.0.0.61"}
    statuses = [client.client.get("/fhir/Practitioner?_count=1", environ_base=here).status_code
                for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = client.client.get("/fhir/Location", environ_base=here)
    assert response.status_code == 429 and response.mimetype == "application/fhir+json"
    assert response.get_json(force=True)["issue"][0]["code"] == "throttled"
    assert "Retry-After" in response.headers or "X-RateLimit-Reset" in response.headers


def test_unexpected_failure_is_a_500_operation_outcome(fhir, corpus, monkeypatch):
    from referral.fhir import resources

    def broken(provider, snapshot):
        raise RuntimeError("renderer failed")

    monkeypatch.setitem(resources.LISTING_BUILDERS, "Practitioner", broken)
    body = fhir.get(f"/fhir/Practitioner/{corpus.edge['special']}", status=500)
    assert issue_code(body) == "exception" and "renderer" not in body["issue"][0]["diagnostics"]
    monkeypatch.undo()
    fhir.get(f"/fhir/Practitioner/{corpus.edge['special']}")


def test_database_outage_is_a_503_operation_outcome():
    from tests.fhir.conftest import FhirClient

    unreachable = make_app(("postgresql+psycopg://postgres@127.0.0.1:9/nowhere",
                            {"connect_args": {"connect_timeout": 2}}))
    client = FhirClient(unreachable)
    body = client.get("/fhir/Practitioner?family=x", status=503)
    assert issue_code(body) == "transient"
    assert client.client.get("/fhir/Practitioner/1").headers["Retry-After"] == "5"
    client.get("/fhir/metadata")  # needs no database


def test_json_api_and_pages_keep_their_own_errors(fhir):
    assert_error_shape(fhir.client.get("/api/v1/providers/999999"), 404)
    page = fhir.client.get("/providers/999999")
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_cors_allows_reading_from_other_origins(fhir, corpus):
    origin = {"Origin": "https://ehr.example"}
    for path in ("/fhir/metadata", "/fhir/PractitionerRole?_count=1",
                 f"/fhir/Practitioner/{corpus.edge['special']}"):
        assert fhir.client.get(path, headers=origin).headers[
            "Access-Control-Allow-Origin"] == "*"
    preflight = fhir.client.options("/fhir/Practitioner", headers={
        **origin, "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"


def test_head_answers_like_get_without_a_body(fhir, corpus):
    for path in (f"/fhir/Practitioner/{corpus.edge['special']}", "/fhir/Practitioner?_count=2"):
        response = fhir.client.head(path)
        assert response.status_code == 200 and response.mimetype == "application/fhir+json"
        assert response.get_data() == b""
    assert fhir.client.head(f"/fhir/Practitioner/{corpus.edge['gone']}").status_code == 410


def test_paging_cursors_cannot_be_forged_or_reused_forever(fhir, corpus):
    import datetime as dt
    from urllib.parse import parse_qsl, urlencode, urlsplit

    from referral.fhir.params import Cursor

    first = fhir.get("/fhir/Practitioner?_count=3")
    following = dict(parse_qsl(urlsplit(next(
        link["url"] for link in first["link"] if link["relation"] == "next")).query))
    after, moment, signature = following["_cursor"].split(".")
    fhir.get(f"/fhir/Practitioner?_count=3&_cursor={following['_cursor']}")
    # moving the moment back a year would bring back listings hidden since: refused
    earlier = str(int(moment) - 400 * 86_400 * 1_000_000)
    fhir.get(f"/fhir/Practitioner?_count=3&_cursor={after}.{earlier}.{signature}", status=400)
    fhir.get(f"/fhir/Practitioner?_count=3&_cursor={int(after) + 1}.{moment}.{signature}",
             status=400)
    secret = corpus.app.config["SECRET_KEY"]
    stale = Cursor(int(after), dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    expired = fhir.get("/fhir/Practitioner?" + urlencode(
        {"_count": 3, "_cursor": stale.token(secret)}), status=400)
    assert "expired" in expired["issue"][0]["diagnostics"]
