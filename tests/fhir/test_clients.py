"""Real FHIR client libraries against the API over real HTTP (werkzeug on 127.0.0.1):
fhirpy for searches, chains, counts, reads and paging to the end; fhirclient (whose
models are FHIR 4.0.1, parsed strictly) for the CapabilityStatement, includes and
revincludes across every page."""

from __future__ import annotations

from collections import Counter

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

NUCC = "http://nucc.org/provider-taxonomy"


@pytest.fixture(scope="module")
def fhirpy_client(live_corpus):
    """A synchronous fhirpy client on the live server."""
    return SyncFHIRClient(live_corpus.base)


def busiest_zip_and_code(rows):
    """The ZIP with the most practices, and its most frequent taxonomy code."""
    zip_code = Counter(p.zip for p in rows.located()).most_common(1)[0][0]
    code = Counter(c for p in rows.located() if p.zip == zip_code
                   for c in p.taxonomy_codes).most_common(1)[0][0]
    return zip_code, code


def test_fhirpy_searches_with_chains_and_includes(fhirpy_client, rows):
    zip_code, code = busiest_zip_and_code(rows)
    expected = {p.id for p in rows.located() if p.zip == zip_code and code in p.taxonomy_codes}
    search = (fhirpy_client.resources("PractitionerRole")
              .search(location__address_postalcode=zip_code, specialty=f"{NUCC}|{code}")
              .include("PractitionerRole", "practitioner")
              .include("PractitionerRole", "location").limit(2))
    roles = search.fetch_all()  # follows next links
    assert {int(r.id) for r in roles} == expected and len(roles) == len(expected)
    assert search.count() == len(expected)
    bundle = search.limit(50).fetch_raw()
    included = {(e.resource.resourceType, int(e.resource.id)) for e in bundle.entry
                if e.search.mode == "include"}
    assert included == {(t, i) for i in expected for t in ("Practitioner", "Location")}
    for role in roles:
        practitioner = role.get("practitioner").to_resource()
        assert practitioner.id == role.id and practitioner.get("name")[0]["family"]


def test_fhirpy_chains_to_practitioner_and_organization(fhirpy_client, rows):
    prefix = Counter(p.last_name for p in rows.public()).most_common(1)[0][0][:3]
    found = fhirpy_client.resources("PractitionerRole").search(
        practitioner__name=prefix).limit(100).fetch_all()
    assert {int(r.id) for r in found} == {
        p.id for p in rows.public() if any(s.lower().startswith(prefix.lower()) for s in (
            p.first_name, p.last_name))}
    clinic = next(c for c in rows.clinics if c.id == rows.public()[0].clinic_id)
    in_clinic = fhirpy_client.resources("PractitionerRole").search(
        organization__name=clinic.name).limit(100).fetch_all()
    assert {int(r.id) for r in in_clinic} == {
        p.id for p in rows.public() if next(c for c in rows.clinics if c.id == p.clinic_id)
        .name.lower().startswith(clinic.name.lower())}


def test_fhirpy_pages_through_every_practitioner(fhirpy_client, rows):
    everyone = fhirpy_client.resources("Practitioner").limit(97).fetch_all()
    ids = [int(p.id) for p in everyone]
    assert len(ids) == len(set(ids)) and set(ids) == {p.id for p in rows.public()}
    assert fhirpy_client.resources("Practitioner").count() == len(ids)


def test_fhirpy_reads_and_sees_errors(fhirpy_client, corpus):
    location = fhirpy_client.reference("Location", str(corpus.edge["multi"])).to_resource()
    assert location.get("address")["postalCode"] == "10118"
    with pytest.raises(ResourceNotFound):  # 410 Gone
        fhirpy_client.reference("Practitioner", str(corpus.edge["gone"])).to_resource()
    with pytest.raises(ResourceNotFound):
        fhirpy_client.reference("Practitioner", str(corpus.edge["hidden"])).to_resource()
    with pytest.raises(OperationOutcome) as refused:
        fhirpy_client.resources("Location").search(near="not-a-point").fetch()
    assert "near" in str(refused.value)


def test_fhirclient_reads_the_capability_statement_and_resources(live_corpus, corpus):
    from fhirclient import client
    from fhirclient.models.organization import Organization
    from fhirclient.models.practitionerrole import PractitionerRole

    smart = client.FHIRClient(settings={"app_id": "directory-tests",
                                        "api_base": live_corpus.base})
    smart.prepare()  # reads /metadata into the R4 CapabilityStatement model
    statement = smart.server.capabilityStatement
    assert statement.fhirVersion == "4.0.1"
    assert {r.type for r in statement.rest[0].resource} >= {
        "Practitioner", "PractitionerRole", "Organization", "Location", "HealthcareService"}
    role = PractitionerRole.read(str(corpus.edge["special"]), smart.server)
    assert role.practitioner.reference == f"Practitioner/{corpus.edge['special']}"
    organization = Organization.read(str(corpus.clinics["registry"]), smart.server)
    assert organization.identifier[0].system == "http://hl7.org/fhir/sid/us-npi"


def test_fhirclient_includes_across_every_page(live_corpus, rows):
    from fhirclient import client
    from fhirclient.models.practitioner import Practitioner
    from fhirclient.models.practitionerrole import PractitionerRole

    smart = client.FHIRClient(settings={"app_id": "directory-tests",
                                        "api_base": live_corpus.base})
    state = Counter(p.state for p in rows.located()).most_common(1)[0][0]
    expected = {p.id for p in rows.located() if p.state == state}
    search = (PractitionerRole.where(struct={"location.address-state": state, "_count": "4"})
              .include("practitioner").include("location").include("organization"))
    roles, practitioners, locations, organizations, pages = set(), set(), set(), set(), 0
    for bundle in search.perform_iter(smart.server):
        pages += 1
        for entry in bundle.entry or []:
            kind = entry.resource.resource_type
            {"PractitionerRole": roles, "Practitioner": practitioners, "Location": locations,
             "Organization": organizations}[kind].add(int(entry.resource.id))
    assert pages == -(-len(expected) // 4)
    assert roles == practitioners == locations == expected
    assert organizations == {p.clinic_id for p in rows.located() if p.state == state}
    reverse = Practitioner.where(struct={"_id": ",".join(map(str, sorted(expected)[:3]))}) \
        .include("practitioner", PractitionerRole, reverse=True)
    found = Counter(e.resource.resource_type for b in reverse.perform_iter(smart.server)
                    for e in b.entry or [])
    assert found == {"Practitioner": 3, "PractitionerRole": 3}
