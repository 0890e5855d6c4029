"""What the FHIR API declares about itself: the CapabilityStatement, our CodeSystems and
the StructureDefinitions of our extensions (all generated from the code that serves them).
"""

from __future__ import annotations

from . import terms
from .kinds import KINDS, revinclude_sources
from .params import DEFAULT_COUNT, MAX_COUNT
from .terms import CODE_SYSTEMS, our_url

SOFTWARE = "Mental-health provider directory"
PUBLISHER = "Mental-health provider directory (open source)"
SOFTWARE_VERSION = "0.1.0"

#: Our extensions: id -> (title, description, contexts, value type or sub-extensions).
#: A value type is a FHIR type code; sub-extensions are ``[(name, type, min, max, short)]``.
EXTENSIONS: dict[str, tuple[str, str, list[str], object]] = {
    "listing-verification": (
        "Listing verification",
        "When the clinic last attested that the listing is current (lastVerified) and "
        "whether that is longer ago than the directory's STALE_AFTER_DAYS (stale), and "
        "whether patients reported that it may be out of date (reported). Plan-Net "
        "has no verification extension, so this one is ours.",
        ["Practitioner", "PractitionerRole", "Location", "HealthcareService"],
        [("lastVerified", "dateTime", 0, "1", "When the listing was last verified"),
         ("stale", "boolean", 1, "1", "Not verified within STALE_AFTER_DAYS"),
         ("reported", "boolean", 1, "1", "Patients reported it may be out of date")]),
    "accepts-coordinated-care": (
        "Accepts coordinated care",
        "Whether the provider coordinates care with the patient's other providers "
        "(a therapist with a prescriber, and the other way round).",
        ["HealthcareService"], "boolean"),
    "accepted-insurance": (
        "Accepted insurance",
        "A payer whose insurance the listing accepts (our payer CodeSystem); repeated per payer.",
        ["HealthcareService"], "CodeableConcept"),
    "fees": (
        "Fees",
        "The listing's fee range per session in USD and whether a sliding scale is offered.",
        ["HealthcareService"],
        [("minimum", "Money", 0, "1", "Lowest fee per session"),
         ("maximum", "Money", 0, "1", "Highest fee per session"),
         ("slidingScale", "boolean", 1, "1", "Offers sliding-scale fees")]),
    "typical-wait": (
        "Typical wait",
        "Typical wait for a first appointment, as the clinic states it (UCUM days).",
        ["PractitionerRole", "HealthcareService"], "Duration"),
}


def _pascal(identifier: str) -> str:
    return "".join(part.capitalize() for part in identifier.split("-"))


def code_system(code_system_id: str) -> dict:
    """One of our CodeSystems as a resource."""
    title, description, concepts = CODE_SYSTEMS[code_system_id]
    return {
        "resourceType": "CodeSystem", "id": code_system_id,
        "url": terms.code_system_url(code_system_id), "version": "1",
        "name": _pascal(code_system_id), "title": title, "status": "active",
        "experimental": False, "publisher": PUBLISHER, "description": description,
        "caseSensitive": True, "content": "complete", "count": len(concepts),
        "concept": [{"code": code, "display": display, "definition": definition}
                    for code, display, definition in concepts],
    }


def structure_definition(extension_id: str) -> dict:
    """The StructureDefinition of one of our extensions."""
    title, description, contexts, value = EXTENSIONS[extension_id]
    url = our_url("StructureDefinition", extension_id)
    elements = [{"id": "Extension", "path": "Extension", "short": title,
                 "definition": description, "min": 0, "max": "*"}]
    if isinstance(value, str):
        elements += [
            {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
            {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1,
             "type": [{"code": value}]},
        ]
    else:
        elements.append({"id": "Extension.extension", "path": "Extension.extension",
                         "slicing": {"discriminator": [{"type": "value", "path": "url"}],
                                     "rules": "open"}})
        for name, type_code, minimum, maximum, short in value:
            slice_id = f"Extension.extension:{name}"
            elements += [
                {"id": slice_id, "path": "Extension.extension", "sliceName": name,
                 "short": short, "min": minimum, "max": maximum},
                {"id": f"{slice_id}.extension", "path": "Extension.extension.extension",
                 "max": "0"},
                {"id": f"{slice_id}.url", "path": "Extension.extension.url", "fixedUri": name},
                {"id": f"{slice_id}.value[x]", "path": "Extension.extension.value[x]",
                 "min": 1, "type": [{"code": type_code}]},
            ]
        elements += [{"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
                     {"id": "Extension.value[x]", "path": "Extension.value[x]", "max": "0"}]
    return {
        "resourceType": "StructureDefinition", "id": extension_id, "url": url, "version": "1",
        "name": _pascal(extension_id), "title": title, "status": "active",
        "experimental": False, "publisher": PUBLISHER, "description": description,
        "fhirVersion": terms.FHIR_VERSION, "kind": "complex-type", "abstract": False,
        "context": [{"type": "element", "expression": context} for context in contexts],
        "type": "Extension",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
        "derivation": "constraint", "differential": {"element": elements},
    }


def catalog() -> dict[str, dict[str, dict]]:
    """Our conformance resources by type and id: CodeSystems and StructureDefinitions."""
    return {"CodeSystem": {cid: code_system(cid) for cid in CODE_SYSTEMS},
            "StructureDefinition": {eid: structure_definition(eid) for eid in EXTENSIONS}}


RESOURCE_NOTES = {
    "Practitioner": "The person of a public listing: NPI, name, credentials (qualification "
                    "text, v2-0360 degree codes where one fits) and NUCC licences with the "
                    "licensed states in practitioner-qualification.whereValid, languages "
                    "(BCP-47), gender.",
    "PractitionerRole": "A public listing at its clinic (same id as its Practitioner, "
                        "HealthcareService and Location): Plan-Net provider role plus our "
                        "listing role, NUCC specialty, telecom, newpatients, typical-wait.",
    "Organization": "Every clinic, including unclaimed registry organizations, type "
                    "prvgrp; addresses are the practice addresses of its public in-person "
                    "listings (data-absent-reason 'unknown' when it has none).",
    "Location": "The practice address of a public in-person listing, with position and the "
                "geolocation extension; telehealth is never a Location.",
    "HealthcareService": "What a public listing offers: category behav, modalities (type, our "
                         "modality CodeSystem), concerns (characteristic), age groups "
                         "(eligibility), in person / telehealth as Plan-Net delivery-method "
                         "physical / virtual, languages, and our extensions accepts-"
                         "coordinated-care, accepted-insurance, fees, typical-wait.",
}


def _documentation(kind_name: str) -> str:
    extensions = [f"{our_url('StructureDefinition', eid)} ({title})"
                  for eid, (title, _, contexts, _) in EXTENSIONS.items() if kind_name in contexts]
    note = RESOURCE_NOTES[kind_name] + (" Visibility: only listings that are active, "
                                        "claimed by a clinic and verified within "
                                        "HIDDEN_AFTER_DAYS; a deactivated listing reads "
                                        "410 Gone." if kind_name != "Organization" else "")
    if extensions:
        note += " Our extensions: " + "; ".join(extensions) + "."
    return note


def _search_params(kind) -> list[dict]:
    found = []
    for name, param in kind.params.items():
        documentation = param.documentation
        if param.type == "string":
            documentation += " Case-insensitive starts-with; :contains and :exact supported."
        if param.type == "reference":
            target = KINDS[param.target]
            chains = [n for n, p in target.params.items() if p.build is not None]
            documentation += (f" Values Type/id or id; the :{param.target} type modifier. "
                              f"Chains: {', '.join(f'{name}.{c}' for c in chains)}.")
        found.append({"name": name, "definition": param.definition, "type": param.type,
                      "documentation": documentation})
    return found


def capability_statement(now_instant: str, base_url: str) -> dict:
    """The server's CapabilityStatement (``GET /fhir/metadata``)."""
    rest_resources = []
    for kind in KINDS.values():
        rest_resources.append({
            "type": kind.name,
            "profile": terms.PROFILES[kind.name],
            "supportedProfile": [terms.PROFILES[kind.name]],
            "documentation": _documentation(kind.name),
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "versioning": "no-version", "readHistory": False, "updateCreate": False,
            "conditionalCreate": False, "conditionalRead": "not-supported",
            "conditionalUpdate": False, "conditionalDelete": "not-supported",
            "searchInclude": [f"{kind.name}:{name}" for name in kind.references()],
            "searchRevInclude": [f"{source}:{name}"
                                 for source, name in revinclude_sources(kind.name)],
            "searchParam": _search_params(kind),
        })
    for resource_type in ("CodeSystem", "StructureDefinition"):
        rest_resources.append({
            "type": resource_type,
            "documentation": ("Our code systems (modality, concern, age-group, payer, "
                              "listing-role)." if resource_type == "CodeSystem" else
                              "Definitions of our extensions."),
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [
                {"name": "url", "definition": f"http://hl7.org/fhir/SearchParameter/"
                                              f"{resource_type}-url", "type": "uri",
                 "documentation": "Exact canonical URL."},
                {"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id",
                 "type": "token"}],
        })
    return {
        "resourceType": "CapabilityStatement", "id": "mh-directory-plan-net",
        "url": our_url("CapabilityStatement", "mh-directory-plan-net"), "version": "1",
        "name": "MentalHealthDirectoryPlanNet",
        "title": "Mental-health provider directory: FHIR Plan-Net read API",
        "status": "active", "experimental": False, "date": now_instant[:10],
        "publisher": PUBLISHER,
        "description": "Read-only, public FHIR R4 API of the directory's patient-visible "
                       "listings, conforming to Da Vinci PDex Plan-Net.",
        "kind": "instance",
        "instantiates": [terms.PLAN_NET_CAPABILITY],
        "software": {"name": SOFTWARE, "version": SOFTWARE_VERSION},
        "implementation": {"description": "Mental-health provider directory, Plan-Net API",
                           "url": base_url},
        "fhirVersion": terms.FHIR_VERSION,
        "format": ["json"],
        "implementationGuide": [terms.PLAN_NET_IG],
        "rest": [{
            "mode": "server",
            "documentation": (
                "Public, no sign-in, read-only; answers application/fhir+json. Search results "
                f"come in id order, {DEFAULT_COUNT} per page by default (_count up to "
                f"{MAX_COUNT}); follow Bundle.link next, which keeps the position and the "
                "moment of the first page, so paging is stable while listings change. "
                "Unknown parameters are ignored (reported in an OperationOutcome entry) "
                "unless the request says Prefer: handling=strict, which answers 400. "
                "_total=none skips the count. Errors are OperationOutcome resources."),
            "security": {"cors": True,
                         "description": "No authentication: everything served is public."},
            "resource": rest_resources,
        }],
    }
