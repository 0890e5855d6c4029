"""``_include`` and ``_revinclude`` bring exactly the referenced (or referencing)
resources; ``_count``, ``total`` and the ``next``/``self`` links page through a search to
its end without repeats or gaps, also while listings are being changed."""

from __future__ import annotations

import math
import random
import threading
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from referral.extensions import db
from referral.models import Provider, utcnow
from tests.fhir.conftest import LiveServer, load_rows

MEDIA_TYPE = "application/fhir+json"


def split(bundles) -> tuple[set, dict]:
    """``({match ids}, {resource type: {included ids}})`` over all pages."""
    matches, included = set(), {}
    for bundle in bundles:
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            if entry["search"]["mode"] == "match":
                matches.add(int(resource["id"]))
            elif entry["search"]["mode"] == "include":
                included.setdefault(resource["resourceType"], set()).add(int(resource["id"]))
    return matches, included


def some_public(rows, count=12):
    """A spread of public listing ids."""
    return sorted(p.id for p in rows.public())[::37][:count]


@pytest.mark.parametrize("target", ["practitioner", "location", "organization", "service"])
def test_role_includes_bring_exactly_the_referenced_resources(fhir, rows, corpus, target):
    chosen = some_public(rows) + [corpus.edge["telehealth_only"]]
    bundles = fhir.pages(f"/fhir/PractitionerRole?_id={','.join(map(str, chosen))}"
                         f"&_include=PractitionerRole:{target}&_count=5")
    matches, included = split(bundles)
    assert matches == set(chosen)
    listings = {p.id: p for p in rows.public()}
    expected = {
        "practitioner": ("Practitioner", set(chosen)),
        "service": ("HealthcareService", set(chosen)),
        "location": ("Location", {i for i in chosen if listings[i].in_person
                                  and listings[i].zip is not None}),
        "organization": ("Organization", {listings[i].clinic_id for i in chosen}),
    }[target]
    assert included == {expected[0]: expected[1]}
    assert expected[1] and (target != "location" or expected[1] != set(chosen))


def test_practitioners_with_their_roles(fhir, rows):
    chosen = some_public(rows)
    bundles = fhir.pages(f"/fhir/Practitioner?_id={','.join(map(str, chosen))}"
                         "&_revinclude=PractitionerRole:practitioner")
    assert split(bundles) == (set(chosen), {"PractitionerRole": set(chosen)})


def test_locations_with_their_roles(fhir, rows):
    zip_code = rows.located()[0].zip
    bundles = fhir.pages(f"/fhir/Location?address-postalcode={zip_code}"
                         "&_revinclude=PractitionerRole:location")
    expected = {p.id for p in rows.located() if p.zip == zip_code}
    assert split(bundles) == (expected, {"PractitionerRole": expected})


def test_organizations_with_their_roles(fhir, rows, corpus):
    clinics = sorted({p.clinic_id for p in rows.public()})[:3] + [corpus.clinics["registry"]]
    bundles = fhir.pages(f"/fhir/Organization?_id={','.join(map(str, clinics))}"
                         "&_revinclude=PractitionerRole:organization&_count=2")
    expected = {p.id for p in rows.public() if p.clinic_id in clinics}
    assert split(bundles) == (set(clinics), {"PractitionerRole": expected})
    assert len(bundles) == 2


def test_every_declared_include_and_revinclude_returns_what_the_matches_reference(fhir):
    statement = fhir.get("/fhir/metadata")
    declared = [(r["type"], "_include", value) for r in statement["rest"][0]["resource"]
                for value in r.get("searchInclude", [])]
    declared += [(r["type"], "_revinclude", value) for r in statement["rest"][0]["resource"]
                 for value in r.get("searchRevInclude", [])]
    assert len(declared) >= 7
    strict = {"Prefer": "handling=strict"}
    for resource_type, how, value in declared:
        bundle = fhir.get(f"/fhir/{resource_type}?_count=15&{how}={value}", headers=strict)
        matches = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
        included = {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]
                    for e in bundle["entry"] if e["search"]["mode"] == "include"}
        source, param = value.split(":")[:2]
        element = {"practitioner": "practitioner", "organization": "organization",
                   "location": "location", "service": "healthcareService"}.get(param)
        if resource_type == "HealthcareService" and param == "organization":
            element = "providedBy"
        if resource_type == "Location" and param == "organization":
            element = "managingOrganization"
        if how == "_include":
            referenced = set()
            for match in matches:
                found = match.get(element) or []
                for ref in found if isinstance(found, list) else [found]:
                    referenced.add(ref["reference"])
            assert set(included) == referenced, value
        else:
            targets = {f"{resource_type}/{m['id']}" for m in matches}
            for resource in included.values():
                element = {"PractitionerRole": {"practitioner": "practitioner",
                                                "organization": "organization",
                                                "location": "location",
                                                "service": "healthcareService"},
                           "HealthcareService": {"organization": "providedBy",
                                                 "location": "location"},
                           "Location": {"organization": "managingOrganization"}}[source][param]
                found = resource.get(element) or []
                refs = {r["reference"] for r in (found if isinstance(found, list) else [found])}
                assert refs & targets, (value, resource["id"])


def test_paging_covers_every_result_once_with_total_and_links(fhir, rows):
    expected = sorted(p.id for p in rows.public())
    bundles = fhir.pages("/fhir/PractitionerRole?_count=37&_total=accurate")
    ids = [int(e["resource"]["id"]) for b in bundles for e in b["entry"]]
    assert ids == expected
    assert len(bundles) == math.ceil(len(expected) / 37)
    for bundle in bundles:
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert bundle["total"] == len(expected)
        assert dict(parse_qsl(urlsplit(links["self"]).query))["_count"] == "37"
        assert "_cursor" not in links["first"]
    assert "next" not in {link["relation"] for link in bundles[-1]["link"]}
    again = fhir.get(urlsplit(bundles[1]["link"][0]["url"])._replace(
        scheme="", netloc="").geturl())  # the self link of page 2 reproduces page 2
    assert again["entry"] == bundles[1]["entry"]


def test_count_zero_gives_only_the_total_and_total_none_skips_it(fhir, rows):
    counted = fhir.get("/fhir/Practitioner?_count=0")
    assert counted["total"] == len(rows.public()) and "entry" not in counted
    assert "next" not in {link["relation"] for link in counted["link"]}
    uncounted = fhir.get("/fhir/Practitioner?_total=none&_count=3")
    assert "total" not in uncounted and len(uncounted["entry"]) == 3
    huge = fhir.get("/fhir/Practitioner?_count=100000")
    assert len(huge["entry"]) == 200  # capped at the documented maximum


# ---------------------------------------------------------------------------
# Paging while listings change


class Writer(threading.Thread):
    """Changes listings while a client pages: verifies and edits listings of the result
    set, deactivates a few, and adds new ones, recording what it did."""

    def __init__(self, app, candidates: list[int], seed: int = 3):
        super().__init__(daemon=True)
        self.app = app
        self.candidates = candidates
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.touched: set[int] = set()
        self.deactivated: set[int] = set()
        self.created: set[int] = set()
        self.commits = 0
        self.error: BaseException | None = None

    def run(self):
        """Change listings until ``stop`` is set; keep any error for the test."""
        try:
            with self.app.app_context():
                while not self.stop.is_set():
                    self.step()
                    time.sleep(0.002)
                db.session.remove()
        except BaseException as error:  # reported by the test
            self.error = error

    def step(self):
        """One change, committed on its own."""
        roll = self.rng.random()
        provider_id = self.rng.choice(self.candidates)
        provider = db.session.get(Provider, provider_id)
        if roll < 0.05 and provider_id not in self.deactivated:
            provider.active = False
            self.deactivated.add(provider_id)
        elif roll < 0.10:
            clone = Provider(**{column.key: getattr(provider, column.key)
                                for column in Provider.__table__.columns
                                if column.key not in ("id", "npi", "created_at", "updated_at")},
                             npi=f"{9_000_000_000 + self.commits:010d}")
            db.session.add(clone)
            db.session.flush()
            self.created.add(clone.id)
        else:
            provider.last_verified_at = utcnow()
            provider.wait_days = self.rng.randint(0, 60)
            self.touched.add(provider_id)
        db.session.commit()
        self.commits += 1


@pytest.fixture
def changing_directory(app):
    """1,100 generated listings on the test database, served over real HTTP (the JSON
    search index is not kept in step on each commit: the FHIR API does not use it)."""
    from referral.services import search_service
    from seeds.load import seed_directory

    with search_service(app).deferred_sync():
        with app.app_context():
            seed_directory(1100, seed=21)
        server = LiveServer(app)
        yield app, server
        server.stop()


def test_paging_to_the_end_while_listings_change_has_no_repeats_or_gaps(changing_directory):
    app, server = changing_directory
    before = load_rows(app)
    at_start = {p.id for p in before.public()}
    assert len(at_start) >= 900
    writer = Writer(app, sorted(at_start))
    session = requests.Session()
    url = f"{server.base}/PractitionerRole?_count=40&_include=PractitionerRole:practitioner"
    seen: list[int] = []
    pages = 0
    writer.start()
    try:
        while url:
            response = session.get(url, headers={"Accept": MEDIA_TYPE}, timeout=30)
            assert response.status_code == 200, response.text[:500]
            bundle = response.json()
            seen += [int(e["resource"]["id"]) for e in bundle.get("entry", [])
                     if e["search"]["mode"] == "match"]
            url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"),
                       None)
            pages += 1
            time.sleep(0.01)  # let the writer interleave with every page
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert writer.error is None, writer.error
    assert writer.commits > pages and writer.touched and writer.deactivated and writer.created
    assert len(seen) == len(set(seen)), "a listing came twice"
    assert seen == sorted(seen)
    unchanged = at_start - writer.deactivated
    assert unchanged <= set(seen), f"gaps: {sorted(unchanged - set(seen))[:10]}"
    assert set(seen) <= at_start | writer.created
    assert set(seen) & writer.touched  # listings changed during paging were still returned once
