"""The CapabilityStatement declares the Plan-Net profiles, interactions, every SHALL search
parameter, include and revinclude, and everything it declares works."""

from __future__ import annotations

import pytest

PLAN_NET = "http://hl7.org/fhir/us/davinci-pdex-plan-net"
STRICT = {"Prefer": "handling=strict"}

#: The issue's SHALL parameters (Plan-Net), with their FHIR search types.
SHALL = {
    "Practitioner": {"name": "string", "family": "string", "given": "string", "_id": "token",
                     "_lastUpdated": "date"},
    "PractitionerRole": {"practitioner": "reference", "organization": "reference",
                         "location": "reference", "service": "reference", "role": "token",
                         "specialty": "token", "_id": "token", "_lastUpdated": "date"},
    "Organization": {"name": "string", "address": "string", "type": "token",
                     "partof": "reference", "_id": "token"},
    "Location": {"address": "string", "address-city": "string", "address-state": "string",
                 "address-postalcode": "string", "organization": "reference",
                 "type": "token", "_id": "token", "near": "special"},
    "HealthcareService": {"service-category": "token", "specialty": "token",
                          "organization": "reference", "location": "reference",
                          "name": "string", "_id": "token"},
}
SHALL_CHAINS = ["practitioner.name", "location.address-state", "location.address-postalcode",
                "location.address-city", "organization.name"]
INCLUDES = {"PractitionerRole": {"PractitionerRole:practitioner", "PractitionerRole:location",
                                 "PractitionerRole:organization", "PractitionerRole:service"}}
REVINCLUDES = {"Practitioner": {"PractitionerRole:practitioner"},
               "Location": {"PractitionerRole:location"},
               "Organization": {"PractitionerRole:organization"}}
SAMPLE = {"string": "a", "token": "x", "date": "ge2000-01-01", "special": "42.36|-71.06|10|km"}


@pytest.fixture(scope="module")
def statement(fhir):
    """The CapabilityStatement."""
    return fhir.get("/fhir/metadata")


def resource(statement, resource_type):
    """The CapabilityStatement's entry for one resource type."""
    return next(r for r in statement["rest"][0]["resource"] if r["type"] == resource_type)


def test_statement_declares_an_r4_plan_net_read_server(statement):
    assert statement["fhirVersion"] == "4.0.1" and statement["kind"] == "instance"
    assert statement["format"] == ["json"] and statement["rest"][0]["mode"] == "server"
    assert statement["instantiates"] == [f"{PLAN_NET}/CapabilityStatement/plan-net"]
    for resource_type in SHALL:
        declared = resource(statement, resource_type)
        assert declared["profile"] == f"{PLAN_NET}/StructureDefinition/plannet-{resource_type}"
        assert {i["code"] for i in declared["interaction"]} == {"read", "search-type"}


@pytest.mark.parametrize("resource_type", list(SHALL))
def test_every_shall_parameter_include_and_revinclude_is_declared(statement, resource_type):
    declared = resource(statement, resource_type)
    types = {p["name"]: p["type"] for p in declared["searchParam"]}
    assert all(types.get(name) == kind for name, kind in SHALL[resource_type].items()), types
    assert INCLUDES.get(resource_type, set()) <= set(declared["searchInclude"])
    assert REVINCLUDES.get(resource_type, set()) <= set(declared["searchRevInclude"])
    for param in declared["searchParam"]:
        assert param["definition"].startswith("http://hl7.org/fhir/")


def test_shall_chains_are_documented(statement):
    role = resource(statement, "PractitionerRole")
    documentation = " ".join(p["documentation"] for p in role["searchParam"])
    assert all(chain in documentation for chain in SHALL_CHAINS)


def test_everything_declared_is_understood_under_strict_handling(fhir, statement):
    resources = statement["rest"][0]["resource"]
    types = {r["type"]: {p["name"]: p for p in r["searchParam"]} for r in resources}

    def sample(param) -> str:
        if param["type"] == "reference":
            return f"{target_of(param)}/1"
        if param["type"] == "uri":
            return "http://example.org/x"
        return SAMPLE[param["type"]]

    def target_of(param) -> str:
        return param["documentation"].split(" type modifier")[0].rsplit(":", 1)[1]

    checked = 0
    for declared in resources:
        for param in declared["searchParam"]:
            fhir.get(f"/fhir/{declared['type']}?{param['name']}={sample(param)}",
                     headers=STRICT)
            checked += 1
            if param["type"] == "reference":
                chains = param["documentation"].split("Chains: ")[1].rstrip(".").split(", ")
                for chain in chains:
                    inner = types[target_of(param)][chain.split(".", 1)[1]]
                    fhir.get(f"/fhir/{declared['type']}?{chain}={sample(inner)}",
                             headers=STRICT)
                    checked += 1
    assert checked > 60


def test_our_code_systems_and_extension_definitions_are_served(fhir):
    code_systems = fhir.get("/fhir/CodeSystem")
    ids = {e["resource"]["id"] for e in code_systems["entry"]}
    assert {"modality", "concern", "age-group", "payer", "listing-role"} == ids
    modality = fhir.get("/fhir/CodeSystem/modality")
    assert {c["code"] for c in modality["concept"]} >= {"CBT", "DBT", "EMDR", "ERP"}
    by_url = fhir.get(f"/fhir/CodeSystem?url={modality['url']}")
    assert [e["resource"]["id"] for e in by_url["entry"]] == ["modality"]
    definitions = fhir.get("/fhir/StructureDefinition")
    assert {e["resource"]["id"] for e in definitions["entry"]} == {
        "listing-verification", "accepts-coordinated-care", "accepted-insurance", "fees",
        "typical-wait"}
    verification = fhir.get("/fhir/StructureDefinition/listing-verification")
    slices = [e["sliceName"] for e in verification["differential"]["element"]
              if "sliceName" in e]
    assert slices == ["lastVerified", "stale", "reported"]
    fhir.get("/fhir/StructureDefinition?colour=red", status=400, headers=STRICT)


def test_canonical_base_is_configurable(corpus):
    from tests.conftest import make_app
    from tests.fhir.conftest import FhirClient

    app = make_app((corpus.app.config["SQLALCHEMY_DATABASE_URI"],
                    {k: v for k, v in corpus.app.config["SQLALCHEMY_ENGINE_OPTIONS"].items()
                     if k == "connect_args"}),
                   FHIR_CANONICAL_BASE="https://directory.example.net/fhir")
    client = FhirClient(app)
    assert client.get("/fhir/CodeSystem/payer")["url"] == (
        "https://directory.example.net/fhir/CodeSystem/payer")
    role = client.get(f"/fhir/PractitionerRole/{corpus.edge['special']}")
    assert any(e["url"] == "https://directory.example.net/fhir/StructureDefinition/"
                           "listing-verification" for e in role["extension"])
