"""Every resource the API emits validates, says what the listing says, and only public
listings are emitted; deactivated, unclaimed and long-unverified listings are not."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fhir.validation import NPI, NUCC, PLAN_NET, codes, extensions, sub_value

ALL_INCLUDES = ("&_include=PractitionerRole:practitioner&_include=PractitionerRole:location"
                "&_include=PractitionerRole:organization&_include=PractitionerRole:service")


def instant(moment: dt.datetime) -> str:
    """A FHIR instant with microseconds, as the server writes them."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def our(extension_url: str) -> bool:
    """An extension URL of ours (not HL7's)."""
    return "/StructureDefinition/" in extension_url and not extension_url.startswith(
        "http://hl7.org/")


@pytest.mark.parametrize("resource_type", ["Practitioner", "PractitionerRole", "Location",
                                           "HealthcareService", "Organization"])
def test_every_resource_of_each_type_validates_and_only_public_ones_are_emitted(
        fhir, rows, resource_type):
    ids, total = fhir.search_ids(f"/fhir/{resource_type}?_count=200")
    if resource_type == "Organization":
        expected = {c.id for c in rows.clinics}
    elif resource_type == "Location":
        expected = {p.id for p in rows.located()}
    else:
        expected = {p.id for p in rows.public()}
    assert set(ids) == expected and total == len(expected)
    assert len(rows.public()) < len(rows.listings)  # some listings are rightly not public


def test_roles_with_every_include_validate_and_reference_exactly_what_is_included(fhir, rows):
    bundles = fhir.pages("/fhir/PractitionerRole?_count=150" + ALL_INCLUDES)
    matches, included = [], {}
    for bundle in bundles:
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if entry["search"]["mode"] == "match":
                matches.append(resource)
            else:
                included[f"{resource['resourceType']}/{resource['id']}"] = resource
    referenced = set()
    for role in matches:
        for field in ("practitioner", "organization"):
            referenced.add(role[field]["reference"])
        for field in ("location", "healthcareService"):
            referenced.update(r["reference"] for r in role.get(field, []))
    # every page includes what its matches reference; across pages an organization repeats
    assert referenced == set(included)
    located = {p.id for p in rows.located()}
    assert {int(r.split("/")[1]) for r in referenced if r.startswith("Location/")} == located


def test_a_listing_becomes_four_resources_that_say_what_the_listing_says(fhir, corpus, rows):
    listing = next(p for p in rows.listings if p.id == corpus.edge["special"])
    base = f"/fhir/{{}}/{listing.id}"
    practitioner = fhir.get(base.format("Practitioner"))
    assert practitioner["identifier"][0] == {
        "use": "official", "type": practitioner["identifier"][0]["type"], "system": NPI,
        "value": listing.npi}
    name = practitioner["name"][0]
    assert (name["family"], name["given"], name["suffix"], name["text"]) == (
        "D'Angelo", ["Dana"], ["APRN", "PMHNP"], "Dana D'Angelo, APRN, PMHNP")
    assert practitioner["gender"] == "other"  # "they/them" is non-binary
    qualifications = practitioner["qualification"]
    assert [q["code"]["text"] for q in qualifications[:2]] == ["APRN", "PMHNP"]
    licence = qualifications[2]
    assert codes(licence["code"], NUCC) == ["363LP0808X"]
    where = extensions(licence, PLAN_NET + "/StructureDefinition/practitioner-qualification")[0]
    assert [codes(p["valueCodeableConcept"], "https://www.usps.com/")[0]
            for p in where["extension"] if p["url"] == "whereValid"] == ["NY", "NJ", "CT"]
    assert [codes(c, "urn:ietf:bcp:47")[0] for c in practitioner["communication"]] == ["es",
                                                                                       "ase"]

    role = fhir.get(base.format("PractitionerRole"))
    assert codes(role["code"][0], PLAN_NET + "/CodeSystem/ProviderRoleCS") == ["apn"]
    assert "prescriber" in [c["code"] for c in role["code"][0]["coding"]]
    assert role["practitioner"]["reference"] == f"Practitioner/{listing.id}"
    assert role["organization"]["reference"] == f"Organization/{listing.clinic_id}"
    assert role["location"][0]["reference"] == f"Location/{listing.id}"
    assert role["healthcareService"][0]["reference"] == f"HealthcareService/{listing.id}"
    assert "telecom" not in role  # no phone, email or website on this listing
    assert "availabilityExceptions" not in role  # no wait given
    new_patients = extensions(role, PLAN_NET + "/StructureDefinition/newpatients")[0]
    assert codes(sub_value(new_patients, "acceptingPatients"),
                 PLAN_NET + "/CodeSystem/AcceptingPatientsCS") == ["newpt"]

    service = fhir.get(base.format("HealthcareService"))
    delivery = [codes(sub_value(e, "type"), PLAN_NET + "/CodeSystem/DeliveryMethodCS")[0]
                for e in extensions(service, PLAN_NET + "/StructureDefinition/delivery-method")]
    assert delivery == ["physical", "virtual"]
    assert [t["coding"][0]["code"] for t in service["type"]] == ["PSYCHOEDUCATION"]
    assert [c["coding"][0]["code"] for c in service["characteristic"]] == ["bipolar",
                                                                           "depression"]
    assert [e["code"]["coding"][0]["code"] for e in service["eligibility"]] == ["adolescent",
                                                                                "adult"]
    fees = [e for e in service["extension"] if e["url"].endswith("/fees")][0]
    assert fees["extension"] == [{"url": "slidingScale", "valueBoolean": True}]
    assert service["name"] == "Psychiatric medication management with Dana D'Angelo"

    place = fhir.get(base.format("Location"))
    assert place["address"]["line"] == ["350 5th Ave", "Floor 21"]
    assert (place["address"]["state"], place["address"]["postalCode"]) == ("NY", "10118")
    assert place["position"] == {"longitude": -73.9857, "latitude": 40.7484}
    geo = extensions(place["address"], "http://hl7.org/fhir/StructureDefinition/geolocation")
    assert sub_value(geo[0], "latitude") == 40.7484
    assert place["managingOrganization"]["reference"] == f"Organization/{listing.clinic_id}"


def test_telehealth_is_a_virtual_service_never_a_location(fhir, corpus):
    listing_id = corpus.edge["telehealth_only"]
    service = fhir.get(f"/fhir/HealthcareService/{listing_id}")
    delivery = [codes(sub_value(e, "type"), PLAN_NET + "/CodeSystem/DeliveryMethodCS")[0]
                for e in extensions(service, PLAN_NET + "/StructureDefinition/delivery-method")]
    assert delivery == ["virtual"]
    assert "location" not in service
    role = fhir.get(f"/fhir/PractitionerRole/{listing_id}")
    assert "location" not in role
    assert role["telecom"] == [{"system": "email", "value": "theo@wellness.example.org",
                                "use": "work"}]
    fhir.get(f"/fhir/Location/{listing_id}", status=404)
    practitioner = fhir.get(f"/fhir/Practitioner/{listing_id}")
    where = extensions(practitioner["qualification"][-1],
                       PLAN_NET + "/StructureDefinition/practitioner-qualification")[0]
    assert [p["valueCodeableConcept"]["coding"][0]["code"] for p in where["extension"]
            if p["url"] == "whereValid"] == ["NY", "NJ"]  # where telehealth may reach


def test_verification_and_last_update_come_from_the_listing(fhir, corpus, rows):
    for name, stale in (("stale", True), ("special", False)):
        listing = next(p for p in rows.listings if p.id == corpus.edge[name])
        for resource_type in ("Practitioner", "PractitionerRole", "HealthcareService",
                              "Location"):
            resource = fhir.get(f"/fhir/{resource_type}/{listing.id}")
            assert resource["meta"]["lastUpdated"] == instant(listing.updated_at)
            verification = [e for e in resource["extension"]
                            if e["url"].endswith("/StructureDefinition/listing-verification")]
            assert len(verification) == 1
            assert sub_value(verification[0], "lastVerified") == instant(
                listing.last_verified_at)
            assert sub_value(verification[0], "stale") is stale
            assert sub_value(verification[0], "reported") is (listing.reported_at is not None)


def test_stale_flags_match_an_independent_count(fhir, rows):
    bundles = fhir.pages("/fhir/PractitionerRole?_count=200")
    flagged = {int(e["resource"]["id"]) for b in bundles for e in b["entry"]
               if sub_value([x for x in e["resource"]["extension"]
                             if x["url"].endswith("listing-verification")][0], "stale")}
    expected = {p.id for p in rows.public() if rows.now - p.last_verified_at > rows.stale_after}
    assert flagged == expected and 0 < len(expected) < len(rows.public())


def test_deactivated_listings_are_gone_and_unpublished_ones_unknown(fhir, corpus):
    for resource_type in ("Practitioner", "PractitionerRole", "HealthcareService", "Location"):
        gone = fhir.get(f"/fhir/{resource_type}/{corpus.edge['gone']}", status=410)
        assert gone["issue"][0]["code"] == "deleted"
        for name in ("unclaimed", "orphan", "hidden"):
            missing = fhir.get(f"/fhir/{resource_type}/{corpus.edge[name]}", status=404)
            assert missing["issue"][0]["code"] == "not-found"
    for name in ("gone", "unclaimed", "orphan", "hidden"):
        assert fhir.get(f"/fhir/PractitionerRole?_id={corpus.edge[name]}")["total"] == 0


def test_clinics_are_organizations_including_unclaimed_registry_ones(fhir, corpus, rows):
    registry = fhir.get(f"/fhir/Organization/{corpus.clinics['registry']}")
    assert registry["identifier"][0]["system"] == NPI
    assert registry["address"] == [{"extension": [{
        "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
        "valueCode": "unknown"}]}]
    lonely = fhir.get(f"/fhir/Organization/{corpus.clinics['lonely']}")
    assert "line" not in lonely["address"][0]  # its only listing is hidden: no address leaks

    percent = fhir.get(f"/fhir/Organization/{corpus.clinics['percent']}")
    assert [i["system"] for i in percent["identifier"]] == [
        percent["identifier"][0]["system"]]  # no NPI: only our clinic id
    assert percent["identifier"][0]["system"].endswith("/sid/clinic-id")
    assert [c["system"] for c in percent["telecom"]] == ["phone", "email"]
    # one address per distinct public practice address, in the order of their listings
    listings = sorted(rows.clinic_addresses(corpus.clinics["percent"]), key=lambda p: p.id)
    distinct = list(dict.fromkeys((p.address_line1, p.city, p.zip) for p in listings))
    assert [(a["line"][0], a["city"], a["postalCode"]) for a in percent["address"]] == distinct
    assert len(distinct) == 3
    without_coordinates = [a for a in percent["address"] if a["postalCode"] == "02446"][0]
    assert "extension" not in without_coordinates
    assert percent["meta"]["lastUpdated"] == instant(max(
        [p.updated_at for p in listings]
        + [c.created_at for c in rows.clinics if c.id == corpus.clinics["percent"]]))


def test_every_code_and_extension_of_ours_is_published(fhir):
    systems = {r["resource"]["url"]: {c["code"] for c in r["resource"]["concept"]}
               for r in fhir.get("/fhir/CodeSystem")["entry"]}
    definitions = {r["resource"]["url"] for r in fhir.get("/fhir/StructureDefinition")["entry"]}
    bundles = fhir.pages("/fhir/HealthcareService?_count=200") + fhir.pages(
        "/fhir/PractitionerRole?_count=200")
    used_codes, used_extensions = set(), set()

    def walk(node):
        if isinstance(node, dict):
            if "system" in node and "code" in node and node["system"] in systems:
                used_codes.add((node["system"], node["code"]))
            if "url" in node and our(node["url"]):
                used_extensions.add(node["url"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk([b["entry"] for b in bundles])
    assert used_extensions and used_extensions <= definitions
    assert {system for system, _ in used_codes} == set(systems)
    assert all(code in systems[system] for system, code in used_codes)
    for url in systems:
        code_system = fhir.get(f"/fhir/CodeSystem/{url.rsplit('/', 1)[1]}")
        assert code_system["url"] == url and code_system["count"] == len(code_system["concept"])



@pytest.mark.parametrize("resource_type, break_it", [
    ("Practitioner", lambda r: r.update(gender="nb")),
    ("Practitioner", lambda r: r.update(identifier=[])),
    ("Practitioner", lambda r: r.update(unknownElement=1)),
    ("PractitionerRole", lambda r: r.update(active="yes")),
    ("PractitionerRole", lambda r: r["meta"].update(profile=["http://example.org/other"])),
    ("PractitionerRole", lambda r: r.update(extension=[e for e in r["extension"]
                                                      if not e["url"].endswith("newpatients")])),
    ("HealthcareService", lambda r: r.update(category=[])),
    ("Location", lambda r: r.update(status="suspended")),
    ("Location", lambda r: r["address"].update(state="Massachusetts")),
    ("Organization", lambda r: r.update(address=[])),
])
def test_the_checks_reject_what_the_profiles_forbid(fhir, corpus, resource_type, break_it):
    from tests.fhir.validation import check_resource

    listing = corpus.edge["special"] if resource_type != "Organization" else corpus.clinics[
        "percent"]
    resource = fhir.get(f"/fhir/{resource_type}/{listing}")
    check_resource(resource)
    break_it(resource)
    from fhirclient.models.fhirabstractbase import FHIRValidationError

    # a profile rule (assert), fhir.resources' (pydantic) or fhirclient's validation error
    with pytest.raises((AssertionError, ValueError, FHIRValidationError)):
        check_resource(resource)
