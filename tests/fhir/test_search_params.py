"""Every SHALL search parameter (and chain) returns exactly the resources an independent
computation over the database rows expects: same set over all pages, same total.

Each case picks its values from the corpus rows and computes the expected ids in
plain Python from the rows (the visibility rule of ``conftest.Rows`` and the
attributes the resources show), never with the server's SQL.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from urllib.parse import quote

import pytest
from geopy.distance import geodesic

PLAN_NET_CS = "http://hl7.org/fhir/us/davinci-pdex-plan-net/CodeSystem/"
NUCC = "http://nucc.org/provider-taxonomy"
ROLE_CODES = {"psychologist": "py", "prescribing_psychologist": "py",
              "clinical_social_worker": "sw", "counselor": "co",
              "marriage_family_therapist": "mt", "psychoanalyst": "bh",
              "behavior_analyst": "ba", "psychiatrist": "ph", "primary_care": "ph",
              "addiction_medicine": "ph", "psychiatric_np": "apn", "nurse_practitioner": "apn",
              "physician_assistant": "pa"}
SERVICE = {"therapist": "Psychotherapy", "prescriber": "Psychiatric medication management"}


def q(value: str) -> str:
    """URL-encode a parameter value."""
    return quote(value, safe="")


def instant(moment: dt.datetime) -> str:
    """A FHIR instant with microseconds, as the server writes them."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def starts(value, prefix: str) -> bool:
    """FHIR string matching: case-insensitive starts-with."""
    return value is not None and value.lower().startswith(prefix.lower())


def name_text(p) -> str:
    """The whole name a Practitioner shows (\"Maya Okafor, LCSW\")."""
    return f"{p.first_name} {p.last_name}" + (f", {p.credentials}" if p.credentials else "")


def most_common(values):
    """The most frequent value (to pick search values the corpus has many of)."""
    return Counter(values).most_common(1)[0][0]


def clinic_name(rows, clinic_id):
    """The name of a clinic of the corpus."""
    return next(c.name for c in rows.clinics if c.id == clinic_id)


def address_parts(p) -> list:
    """The string parts of a listing's practice address, as its Location shows them."""
    return [p.address_line1, p.address_line2, p.city, p.state, p.zip, "US"]


# Each case function below takes the corpus rows and returns ``(query, expected ids, kind)``:
# its name says which parameter it exercises; ``kind`` says whether the expected set must be
# a proper non-empty subset ("some"), every resource of the type ("all") or none ("none").


def practitioner_name(rows, corpus):
    prefix = most_common(p.last_name for p in rows.public())[:3]
    return f"name={q(prefix)}", {p.id for p in rows.public() if any(
        starts(s, prefix) for s in (p.first_name, p.last_name, name_text(p)))}, "some"


def practitioner_name_full_text(rows, corpus):
    value = "Dana D'Ang"
    return f"name={q(value)}", {p.id for p in rows.public() if starts(name_text(p), value)}, "some"


def practitioner_name_contains(rows, corpus):
    return "name:contains=ang", {p.id for p in rows.public() if any(
        "ang" in s.lower() for s in (p.first_name, p.last_name, name_text(p)))}, "some"


def practitioner_name_exact(rows, corpus):
    last = most_common(p.last_name for p in rows.public())
    return f"name:exact={q(last)}", {p.id for p in rows.public() if last in (
        p.first_name, p.last_name, name_text(p))}, "some"


def practitioner_family(rows, corpus):
    prefix = most_common(p.last_name for p in rows.public())[:2]
    return f"family={q(prefix)}", {p.id for p in rows.public() if starts(p.last_name, prefix)}, \
        "some"


def practitioner_given(rows, corpus):
    prefix = most_common(p.first_name for p in rows.public())[:2]
    return f"given={q(prefix)}", {p.id for p in rows.public()
                                  if starts(p.first_name, prefix)}, "some"


def ids_of_some(rows, corpus):
    chosen = sorted(p.id for p in rows.public())[5:8] + [corpus.edge["hidden"],
                                                         corpus.edge["gone"]]
    public = {p.id for p in rows.public()}
    return "_id=" + ",".join(map(str, chosen)), set(chosen) & public, "some"


def median_update(rows):
    """The median last update of the public listings (splits them in two halves)."""
    return statistics.median_low(p.updated_at for p in rows.public())


def last_updated_ge(rows, corpus):
    moment = median_update(rows)
    return f"_lastUpdated=ge{q(instant(moment))}", {
        p.id for p in rows.public() if p.updated_at >= moment}, "some"


def last_updated_lt_and_gt(rows, corpus):
    low = sorted(p.updated_at for p in rows.public())[len(rows.public()) // 4]
    high = median_update(rows)
    return (f"_lastUpdated=gt{q(instant(low))}&_lastUpdated=lt{q(instant(high))}",
            {p.id for p in rows.public() if low < p.updated_at < high}, "some")


def last_updated_eq_instant(rows, corpus):
    moment = median_update(rows)
    return f"_lastUpdated={q(instant(moment))}", {
        p.id for p in rows.public() if p.updated_at == moment}, "some"


def last_updated_by_day(rows, corpus):
    day = median_update(rows).date()
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return f"_lastUpdated=le{day.isoformat()}", {
        p.id for p in rows.public() if p.updated_at < start + dt.timedelta(days=1)}, "some"


def role_practitioner(rows, corpus):
    chosen = corpus.edge["special"]
    return f"practitioner=Practitioner/{chosen}", {chosen}, "some"


def role_practitioner_plain_id(rows, corpus):
    chosen = sorted(p.id for p in rows.public())[3]
    return f"practitioner={chosen}", {chosen}, "some"


def role_practitioner_not_public(rows, corpus):
    return f"practitioner=Practitioner/{corpus.edge['hidden']}", set(), "none"


def role_organization(rows, corpus):
    clinic = most_common(p.clinic_id for p in rows.public())
    return f"organization=Organization/{clinic}", {
        p.id for p in rows.public() if p.clinic_id == clinic}, "some"


def role_location(rows, corpus):
    chosen = corpus.edge["multi"]
    return f"location=Location/{chosen}", {chosen}, "some"


def role_location_of_telehealth(rows, corpus):
    return f"location=Location/{corpus.edge['telehealth_only']}", set(), "none"


def role_service(rows, corpus):
    chosen = corpus.edge["telehealth_only"]
    return f"service=HealthcareService/{chosen}", {chosen}, "some"


def role_role_plan_net(rows, corpus):
    return f"role={q(PLAN_NET_CS + 'ProviderRoleCS|sw')}", {
        p.id for p in rows.public() if ROLE_CODES[p.provider_type] == "sw"}, "some"


def role_role_ours(rows, corpus):
    return "role=prescriber", {p.id for p in rows.public() if p.role == "prescriber"}, "some"


def role_role_either(rows, corpus):
    return "role=ph,apn", {p.id for p in rows.public()
                           if ROLE_CODES[p.provider_type] in ("ph", "apn")}, "some"


def role_specialty(rows, corpus):
    code = most_common(c for p in rows.public() for c in p.taxonomy_codes)
    return f"specialty={q(NUCC + '|' + code)}", {
        p.id for p in rows.public() if code in p.taxonomy_codes}, "some"


def role_specialty_code_only(rows, corpus):
    return "specialty=103TC0700X", {p.id for p in rows.public()
                                    if "103TC0700X" in p.taxonomy_codes}, "some"


def role_specialty_wrong_system(rows, corpus):
    return f"specialty={q('http://example.org/codes|1041C0700X')}", set(), "none"


def role_chain_practitioner_name(rows, corpus):
    prefix = most_common(p.first_name for p in rows.public())[:3]
    return f"practitioner.name={q(prefix)}", {p.id for p in rows.public() if any(
        starts(s, prefix) for s in (p.first_name, p.last_name, name_text(p)))}, "some"


def role_chain_location_state(rows, corpus):
    state = most_common(p.state for p in rows.located())
    return f"location.address-state={state}", {
        p.id for p in rows.located() if starts(p.state, state)}, "some"


def role_chain_location_postalcode(rows, corpus):
    zip_code = most_common(p.zip for p in rows.located())
    return f"location.address-postalcode={zip_code}", {
        p.id for p in rows.located() if p.zip == zip_code}, "some"


def role_chain_location_postalcode_and_specialty(rows, corpus):
    zip_code = most_common(p.zip for p in rows.located())
    code = most_common(c for p in rows.located() if p.zip == zip_code for c in p.taxonomy_codes)
    return (f"location.address-postalcode={zip_code}&specialty={code}",
            {p.id for p in rows.located() if p.zip == zip_code and code in p.taxonomy_codes},
            "some")


def role_chain_location_city(rows, corpus):
    city = most_common(p.city for p in rows.located())
    return f"location.address-city={q(city.lower())}", {
        p.id for p in rows.located() if starts(p.city, city)}, "some"


def role_chain_organization_name(rows, corpus):
    name = clinic_name(rows, most_common(p.clinic_id for p in rows.public()))
    prefix = name[:6]
    return f"organization.name={q(prefix)}", {
        p.id for p in rows.public() if starts(clinic_name(rows, p.clinic_id), prefix)}, "some"


def role_chain_typed(rows, corpus):
    prefix = "Okonkwo"
    return f"practitioner:Practitioner.family={prefix}", {
        p.id for p in rows.public() if starts(p.last_name, prefix)}, "some"


def organization_name(rows, corpus):
    prefix = most_common(c.name.split()[0] for c in rows.clinics)
    return f"name={q(prefix)}", {c.id for c in rows.clinics if starts(c.name, prefix)}, "some"


def organization_name_contains(rows, corpus):
    return "name:contains=wellness", {c.id for c in rows.clinics
                                      if "wellness" in c.name.lower()}, "some"


def organization_name_with_wildcards(rows, corpus):
    return f"name={q('100% Wellness_')}", {corpus.clinics["percent"]}, "some"


def organization_name_underscore_is_literal(rows, corpus):
    return f"name={q('100_')}", set(), "none"


def organization_address_city(rows, corpus):
    city = most_common(p.city for p in rows.located())
    return f"address={q(city)}", {c.id for c in rows.clinics if any(
        starts(part, city) for p in rows.clinic_addresses(c.id) for part in address_parts(p))}, \
        "some"


def organization_address_zip(rows, corpus):
    return "address=10118", {c.id for c in rows.clinics if any(
        starts(part, "10118") for p in rows.clinic_addresses(c.id)
        for part in address_parts(p))}, "some"


def organization_type(rows, corpus):
    return "type=prvgrp", {c.id for c in rows.clinics}, "all"


def organization_type_other(rows, corpus):
    return f"type={q(PLAN_NET_CS + 'OrgTypeCS|fac')}", set(), "none"


def organization_partof(rows, corpus):
    return f"partof=Organization/{corpus.clinics['percent']}", set(), "none"


def organization_id(rows, corpus):
    chosen = {corpus.clinics["registry"], corpus.clinics["percent"]}
    return "_id=" + ",".join(map(str, sorted(chosen))) + ",999999", chosen, "some"


def organization_last_updated(rows, corpus):
    def last_updated(clinic):
        return max([clinic.created_at] + [p.updated_at for p in rows.clinic_addresses(clinic.id)])
    moment = statistics.median_low(last_updated(c) for c in rows.clinics)
    return f"_lastUpdated=lt{q(instant(moment))}", {
        c.id for c in rows.clinics if last_updated(c) < moment}, "some"


def organization_identifier(rows, corpus):
    registry = next(c for c in rows.clinics if c.id == corpus.clinics["registry"])
    value = f"http://hl7.org/fhir/sid/us-npi|{registry.organization_npi}"
    return f"identifier={q(value)},{q('x|' + str(corpus.clinics['percent']))}", {registry.id}, \
        "some"


def organization_identifier_clinic_id(rows, corpus):
    system = "https://mh-directory.example.org/fhir/sid/clinic-id"
    return f"identifier={q(system + '|' + str(corpus.clinics['percent']))}", {
        corpus.clinics["percent"]}, "some"


def practitioner_identifier(rows, corpus):
    chosen = rows.public()[7]
    return f"identifier={q('http://hl7.org/fhir/sid/us-npi|' + chosen.npi)}", {chosen.id}, "some"


def location_address(rows, corpus):
    return f"address={q('350 5th')}", {p.id for p in rows.located() if any(
        starts(part, "350 5th") for part in address_parts(p))}, "some"


def location_address_state_word(rows, corpus):
    state = most_common(p.state for p in rows.located())
    return f"address={state.lower()}", {p.id for p in rows.located() if any(
        starts(part, state) for part in address_parts(p))}, "some"


def location_address_city(rows, corpus):
    city = most_common(p.city for p in rows.located())
    return f"address-city={q(city[:4])}", {p.id for p in rows.located()
                                           if starts(p.city, city[:4])}, "some"


def location_address_city_exact(rows, corpus):
    return "address-city:exact=Brookline", {p.id for p in rows.located()
                                            if p.city == "Brookline"}, "some"


def location_address_state(rows, corpus):
    state = most_common(p.state for p in rows.located())
    return f"address-state={state}", {p.id for p in rows.located()
                                      if starts(p.state, state)}, "some"


def location_address_postalcode(rows, corpus):
    prefix = most_common(p.zip for p in rows.located())[:3]
    return f"address-postalcode={prefix}", {p.id for p in rows.located()
                                            if starts(p.zip, prefix)}, "some"


def location_organization(rows, corpus):
    clinic = corpus.clinics["percent"]
    return f"organization=Organization/{clinic}", {p.id for p in rows.located()
                                                   if p.clinic_id == clinic}, "some"


def location_type(rows, corpus):
    return "type=OF", {p.id for p in rows.located()}, "all"


def location_type_other(rows, corpus):
    return f"type={q('http://terminology.hl7.org/CodeSystem/v3-RoleCode|HOSP')}", set(), "none"


def location_id(rows, corpus):
    chosen = [corpus.edge["special"], corpus.edge["telehealth_only"], corpus.edge["multi"]]
    return "_id=" + ",".join(map(str, chosen)), {corpus.edge["special"], corpus.edge["multi"]}, \
        "some"


def _near(rows, km: float):
    center = next(p for p in rows.located() if p.zip == most_common(
        p.zip for p in rows.located() if p.latitude is not None))
    return center, {p.id for p in rows.located() if p.latitude is not None and geodesic(
        (center.latitude, center.longitude), (p.latitude, p.longitude)).km <= km}


def location_near_km(rows, corpus):
    center, expected = _near(rows, 80)
    return f"near={center.latitude}|{center.longitude}|80|km", expected, "some"


def location_near_miles(rows, corpus):
    center, expected = _near(rows, 40 * 1.609344)
    return f"near={center.latitude}|{center.longitude}|40|{q('[mi_i]')}", expected, "some"


def service_category(rows, corpus):
    return "service-category=behav", {p.id for p in rows.public()}, "all"


def service_category_other(rows, corpus):
    return f"service-category={q(PLAN_NET_CS + 'HealthcareServiceCategoryCS|dent')}", set(), \
        "none"


def service_specialty(rows, corpus):
    code = most_common(c for p in rows.public() for c in p.taxonomy_codes if c.startswith("20"))
    return f"specialty={q(NUCC + '|' + code)}", {
        p.id for p in rows.public() if code in p.taxonomy_codes}, "some"


def service_specialty_any(rows, corpus):
    return f"specialty={q(NUCC + '|')}", {p.id for p in rows.public() if p.taxonomy_codes}, "all"


def service_organization(rows, corpus):
    clinic = most_common(p.clinic_id for p in rows.public())
    return f"organization={clinic}", {p.id for p in rows.public() if p.clinic_id == clinic}, \
        "some"


def service_location(rows, corpus):
    chosen = sorted(p.id for p in rows.located())[10]
    return f"location=Location/{chosen}", {chosen}, "some"


def service_name(rows, corpus):
    return "name=psychotherapy", {p.id for p in rows.public() if p.role == "therapist"}, "some"


def service_name_contains(rows, corpus):
    last = most_common(p.last_name for p in rows.public())
    return f"name:contains={q(last)}", {p.id for p in rows.public() if last.lower() in (
        f"{SERVICE[p.role]} with {p.first_name} {p.last_name}".lower())}, "some"


def service_type(rows, corpus):
    return "service-type=EMDR", {p.id for p in rows.public() if "EMDR" in p.modalities}, "some"


def service_id(rows, corpus):
    chosen = sorted(p.id for p in rows.public())[-3:]
    return "_id=" + ",".join(map(str, chosen)), set(chosen), "some"


CASES = {
    "Practitioner": [practitioner_name, practitioner_name_full_text, practitioner_name_contains,
                     practitioner_name_exact, practitioner_family, practitioner_given,
                     ids_of_some, last_updated_ge, last_updated_lt_and_gt,
                     last_updated_eq_instant, last_updated_by_day, practitioner_identifier],
    "PractitionerRole": [role_practitioner, role_practitioner_plain_id,
                         role_practitioner_not_public, role_organization, role_location,
                         role_location_of_telehealth, role_service, role_role_plan_net,
                         role_role_ours, role_role_either, role_specialty,
                         role_specialty_code_only, role_specialty_wrong_system, ids_of_some,
                         last_updated_ge, last_updated_lt_and_gt,
                         role_chain_practitioner_name, role_chain_location_state,
                         role_chain_location_postalcode,
                         role_chain_location_postalcode_and_specialty,
                         role_chain_location_city, role_chain_organization_name,
                         role_chain_typed],
    "Organization": [organization_name, organization_name_contains,
                     organization_name_with_wildcards, organization_name_underscore_is_literal,
                     organization_address_city, organization_address_zip, organization_type,
                     organization_type_other, organization_partof, organization_id,
                     organization_last_updated, organization_identifier,
                     organization_identifier_clinic_id],
    "Location": [location_address, location_address_state_word, location_address_city,
                 location_address_city_exact, location_address_state,
                 location_address_postalcode, location_organization, location_type,
                 location_type_other, location_id, location_near_km, location_near_miles,
                 last_updated_ge],
    "HealthcareService": [service_category, service_category_other, service_specialty,
                          service_specialty_any, service_organization, service_location,
                          service_name, service_name_contains, service_type, service_id,
                          last_updated_ge],
}


def base_ids(rows, resource_type: str) -> set:
    """Ids of every resource of the type (what a search without parameters returns)."""
    if resource_type == "Organization":
        return {c.id for c in rows.clinics}
    if resource_type == "Location":
        return {p.id for p in rows.located()}
    return {p.id for p in rows.public()}


@pytest.mark.parametrize("resource_type, case", [
    (resource_type, case) for resource_type, cases in CASES.items() for case in cases],
    ids=lambda value: value if isinstance(value, str) else value.__name__)
def test_search_parameter_matches_an_independent_count(fhir, corpus, rows, resource_type, case):
    query, expected, kind = case(rows, corpus)
    if resource_type == "Location" and case is last_updated_ge:
        expected &= base_ids(rows, "Location")
    everything = base_ids(rows, resource_type)
    ids, total = fhir.search_ids(f"/fhir/{resource_type}?{query}&_count=50")
    assert set(ids) == expected, (query, sorted(set(ids) ^ expected)[:10])
    assert total == len(expected)
    if kind == "some":
        assert 0 < len(expected) < len(everything), (query, len(expected))
    elif kind == "all":
        assert expected == everything
    else:
        assert expected == set()


def test_near_reports_geodesic_distances(fhir, rows):
    center, expected = _near(rows, 80)
    bundles = fhir.pages(f"/fhir/Location?near={center.latitude}|{center.longitude}|80|km"
                         "&_count=7")
    assert len(bundles) > 1  # paged
    located = {p.id: p for p in rows.located()}
    for entry in (e for b in bundles for e in b["entry"]):
        distance = entry["search"]["extension"][0]["valueDistance"]
        place = located[int(entry["resource"]["id"])]
        exact = geodesic((center.latitude, center.longitude), (place.latitude, place.longitude))
        assert distance["code"] == "km" and abs(distance["value"] - exact.km) < 0.01
    assert {int(e["resource"]["id"]) for b in bundles for e in b["entry"]} == expected


def test_repeated_parameters_are_and_and_commas_are_or(fhir, rows):
    state = most_common(p.state for p in rows.located())
    ids, _ = fhir.search_ids(f"/fhir/PractitionerRole?location.address-state={state}"
                             "&role=prescriber&_count=200")
    assert set(ids) == {p.id for p in rows.located() if p.state == state
                        and p.role == "prescriber"}
    ids, _ = fhir.search_ids("/fhir/HealthcareService?service-type=ERP,CPT&_count=200")
    assert set(ids) == {p.id for p in rows.public()
                        if {"ERP", "CPT"} & set(p.modalities)} != set()
