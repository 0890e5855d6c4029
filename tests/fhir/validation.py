"""Checks every FHIR resource the tests receive: R4B models of ``fhir.resources``
(pydantic, unknown elements forbidden), the R4 (4.0.1) models of ``fhirclient``
(strict), and the mandatory elements of the Plan-Net profiles the resource claims.

The Plan-Net rules below are transcribed from the Plan-Net FSH sources
(input/fsh/PlanNet.fsh and Extensions.fsh of HL7/davinci-pdex-plan-net) and the US
Core profiles they derive from; they check what the base models cannot: required
cardinalities, fixed values, required bindings and extension structure.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re

from fhir.resources.R4B import get_fhir_model_class

from referral.npi import is_valid_npi
from referral.taxonomy import TAXONOMY_CODE_RE
from referral.vocab import STATES

PLAN_NET = "http://hl7.org/fhir/us/davinci-pdex-plan-net"
PROFILE = PLAN_NET + "/StructureDefinition/plannet-{}"
NPI = "http://hl7.org/fhir/sid/us-npi"
NUCC = "http://nucc.org/provider-taxonomy"
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
PROVIDER_ROLE_CODES = set(
    [
        "ap", "apn", "at", "au", "bh", "ba", "bt", "cnw", "crnp", "ch", "cs", "co", "dp", "de",
        "drr", "dn", "om", "em", "ho", "lpn", "mt", "ma", "nh", "na", "nu", "ot", "op", "oo",
        "os", "rx", "pt", "ph", "pa", "po", "py", "rn", "rt", "sw", "sp", "sh", "te"
    ])
ACCEPTING = {"nopt", "newpt", "existptonly", "existptfam"}
SERVICE_CATEGORIES = {"behav", "dent", "dme", "emerg", "group", "home", "hosp", "lab", "other",
                      "outpat", "prov", "pharm", "trans", "urg", "vis"}
ORG_TYPES = {"fac", "prvgrp", "payer", "atyprv", "bus", "ntwk"}
LISTING_TYPES = {"Practitioner", "PractitionerRole", "Location", "HealthcareService"}


class ProfileViolation(AssertionError):
    """A resource breaks a rule of the Plan-Net profile it claims."""


def _require(condition: bool, resource: dict, message: str) -> None:
    if not condition:
        raise ProfileViolation(f"{resource.get('resourceType')}/{resource.get('id')}: {message}")


def codes(concept: dict, system: str) -> list[str]:
    """Codes of ``system`` in a CodeableConcept."""
    return [c["code"] for c in concept.get("coding", []) if c.get("system") == system]


def extensions(element: dict, url: str) -> list[dict]:
    """The extensions of ``element`` with ``url``."""
    return [e for e in element.get("extension", []) if e.get("url") == url]


def sub_value(extension: dict, name: str):
    """The value of the sub-extension ``name`` (None when absent)."""
    for part in extension.get("extension", []):
        if part["url"] == name:
            return next(v for k, v in part.items() if k.startswith("value"))
    return None


def validate_models(resource: dict) -> None:
    """Parse with fhir.resources (R4B) and fhirclient (R4, strict); raise on any error."""
    resource_type = resource["resourceType"]
    get_fhir_model_class(resource_type).model_validate(resource)
    module = importlib.import_module(f"fhirclient.models.{resource_type.lower()}")
    getattr(module, resource_type)(resource, strict=True)


def _check_new_patients(resource: dict) -> None:
    found = extensions(resource, PLAN_NET + "/StructureDefinition/newpatients")
    _require(len(found) >= 1, resource, "newpatients extension missing")
    for extension in found:
        accepting = sub_value(extension, "acceptingPatients")
        _require(accepting is not None, resource, "newpatients without acceptingPatients")
        _require(set(codes(accepting, PLAN_NET + "/CodeSystem/AcceptingPatientsCS")) <= ACCEPTING
                 and codes(accepting, PLAN_NET + "/CodeSystem/AcceptingPatientsCS"), resource,
                 "acceptingPatients not from AcceptingPatientsVS")


def _check_specialties(resource: dict, field: str = "specialty") -> None:
    for concept in resource.get(field, []):
        found = codes(concept, NUCC)
        _require(found and all(TAXONOMY_CODE_RE.match(c) for c in found), resource,
                 f"{field} is not a NUCC taxonomy code: {concept}")


def _check_telecom(resource: dict) -> None:
    for contact in resource.get("telecom", []):
        _require(contact.get("system") and contact.get("value"), resource,
                 "telecom needs system and value")


def _check_npi(resource: dict, required: bool) -> None:
    npis = [i["value"] for i in resource.get("identifier", []) if i.get("system") == NPI]
    _require(bool(npis) or not required, resource, "NPI identifier missing")
    _require(all(is_valid_npi(value) for value in npis), resource, f"invalid NPI {npis}")


def check_plan_net(resource: dict) -> None:
    """Raise ``ProfileViolation`` unless ``resource`` meets its Plan-Net profile's rules."""
    resource_type = resource["resourceType"]
    meta = resource.get("meta", {})
    _require(meta.get("profile") == [PROFILE.format(resource_type)], resource,
             f"meta.profile is {meta.get('profile')}")
    _require(bool(INSTANT.match(meta.get("lastUpdated", ""))), resource, "meta.lastUpdated")
    for extension in resource.get("extension", []):
        _require(("extension" in extension) != any(k.startswith("value") for k in extension),
                 resource, f"extension has both or neither value and parts: {extension}")
    if resource_type != "Location":
        _require(resource.get("active") is True, resource, "active must be true")
    if resource_type == "Practitioner":
        _check_npi(resource, required=True)
        _require(resource.get("name") and all(n.get("family") for n in resource["name"]),
                 resource, "name.family is required (US Core)")
        _require(resource.get("gender") in (None, "male", "female", "other", "unknown"),
                 resource, "gender")
        for qualification in resource.get("qualification", []):
            _require("code" in qualification, resource, "qualification.code is required")
            for extension in extensions(qualification, PLAN_NET + "/StructureDefinition/"
                                                                  "practitioner-qualification"):
                _require(sub_value(extension, "status") == "active", resource,
                         "practitioner-qualification.status must be active")
                for part in extension["extension"]:
                    if part["url"] == "whereValid":
                        states = codes(part["valueCodeableConcept"], "https://www.usps.com/")
                        _require(states and set(states) <= set(STATES), resource,
                                 f"whereValid not a USPS state: {part}")
        for language in resource.get("communication", []):
            _require(codes(language, "urn:ietf:bcp:47"), resource, "communication not BCP-47")
    elif resource_type == "PractitionerRole":
        _require(any(k in resource for k in ("practitioner", "organization",
                                             "healthcareService", "location")), resource,
                 "practitioner-or-organization-or-healthcareservice-or-location")
        for concept in resource.get("code", []):
            found = codes(concept, PLAN_NET + "/CodeSystem/ProviderRoleCS")
            _require(found and set(found) <= PROVIDER_ROLE_CODES, resource,
                     "code needs a PractitionerRoleVS coding (required binding)")
        _check_specialties(resource)
        _check_telecom(resource)
        _check_new_patients(resource)
    elif resource_type == "Organization":
        _check_npi(resource, required=False)
        _require(bool(resource.get("name")), resource, "name is required (US Core)")
        _require(len(resource.get("address", [])) >= 1, resource, "address 1..*")
        _require(len(resource.get("type", [])) >= 1 and all(
            set(codes(t, PLAN_NET + "/CodeSystem/OrgTypeCS")) <= ORG_TYPES
            for t in resource["type"]), resource, "type 1..* from OrgTypeVS")
        _check_telecom(resource)
    elif resource_type == "Location":
        _require(resource.get("status") == "active", resource, "status is fixed to active")
        _require(bool(resource.get("name")), resource, "name is required (US Core)")
        _require("mode" not in resource, resource, "mode 0..0")
        address = resource.get("address", {})
        _require(address.get("state") in STATES and address.get("postalCode"), resource,
                 "address.state and postalCode")
        _check_telecom(resource)
        _check_new_patients(resource)
    elif resource_type == "HealthcareService":
        categories = resource.get("category", [])
        _require(len(categories) >= 1 and all(
            set(codes(c, PLAN_NET + "/CodeSystem/HealthcareServiceCategoryCS"))
            <= SERVICE_CATEGORIES for c in categories), resource, "category 1..*")
        _check_specialties(resource)
        _check_telecom(resource)
        _check_new_patients(resource)
        for extension in extensions(resource, PLAN_NET + "/StructureDefinition/delivery-method"):
            kind = sub_value(extension, "type")
            _require(kind is not None and set(codes(
                kind, PLAN_NET + "/CodeSystem/DeliveryMethodCS")) <= {"virtual", "physical"}
                and codes(kind, PLAN_NET + "/CodeSystem/DeliveryMethodCS"), resource,
                "delivery-method.type")


#: Digests of resources already checked (the same resource recurs in many answers).
_CHECKED: set[bytes] = set()


def check_resource(resource: dict) -> None:
    """Every check that applies to one resource (each distinct resource checked once)."""
    digest = hashlib.sha256(json.dumps(resource, sort_keys=True).encode()).digest()
    if digest in _CHECKED:
        return
    validate_models(resource)
    if resource["resourceType"] in LISTING_TYPES | {"Organization"}:
        check_plan_net(resource)
    _CHECKED.add(digest)


def check_bundle(bundle: dict) -> None:
    """Validate a searchset Bundle and every resource in it."""
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset", bundle
    validate_models({**bundle, "entry": [{**entry, "resource": {
        "resourceType": "Basic", "id": "x", "code": {"text": "checked on its own"}}}
        for entry in bundle.get("entry", [])]})
    for entry in bundle.get("entry", []):
        check_resource(entry["resource"])
        mode = entry["search"]["mode"]
        if mode != "outcome":
            resource = entry["resource"]
            assert entry["fullUrl"].endswith(f"/fhir/{resource['resourceType']}/{resource['id']}")
