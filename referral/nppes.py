"""Reading and classifying NPPES provider records (docs/domain.md sections 4 and 5).

Two sources, one set of rules: the CMS monthly file ``npidata_pfile_*.csv`` (330
quoted columns, streamed row by row in constant memory) and saved NPI Registry
API v2.1 responses. Both become ``NppesRecord``; ``classify`` says what a record
is for the directory: a therapist or prescriber to upsert, a behavioral-health
organization to keep as an unclaimed clinic, a deactivation, or a skip with a
reason. Nothing here touches the database (see ``referral.nppes_import``).
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .geo import lookup_zip
from .npi import is_valid_npi
from .taxonomy import EXCLUDED_CODES, provider_type_for_code, role_for_types
from .vocab import STATES

SLOTS = 15


def nppes_header(sex_column: str = "Provider Sex Code") -> list[str]:
    """The 330 column names of the NPPES data file, in CMS order."""
    head = [
        "NPI", "Entity Type Code", "Replacement NPI", "Employer Identification Number (EIN)",
        "Provider Organization Name (Legal Business Name)", "Provider Last Name (Legal Name)",
        "Provider First Name", "Provider Middle Name", "Provider Name Prefix Text",
        "Provider Name Suffix Text", "Provider Credential Text",
        "Provider Other Organization Name", "Provider Other Organization Name Type Code",
        "Provider Other Last Name", "Provider Other First Name", "Provider Other Middle Name",
        "Provider Other Name Prefix Text", "Provider Other Name Suffix Text",
        "Provider Other Credential Text", "Provider Other Last Name Type Code",
        "Provider First Line Business Mailing Address",
        "Provider Second Line Business Mailing Address",
        "Provider Business Mailing Address City Name",
        "Provider Business Mailing Address State Name",
        "Provider Business Mailing Address Postal Code",
        "Provider Business Mailing Address Country Code (If outside U.S.)",
        "Provider Business Mailing Address Telephone Number",
        "Provider Business Mailing Address Fax Number",
        "Provider First Line Business Practice Location Address",
        "Provider Second Line Business Practice Location Address",
        "Provider Business Practice Location Address City Name",
        "Provider Business Practice Location Address State Name",
        "Provider Business Practice Location Address Postal Code",
        "Provider Business Practice Location Address Country Code (If outside U.S.)",
        "Provider Business Practice Location Address Telephone Number",
        "Provider Business Practice Location Address Fax Number",
        "Provider Enumeration Date", "Last Update Date", "NPI Deactivation Reason Code",
        "NPI Deactivation Date", "NPI Reactivation Date", sex_column,
        "Authorized Official Last Name", "Authorized Official First Name",
        "Authorized Official Middle Name", "Authorized Official Title or Position",
        "Authorized Official Telephone Number",
    ]
    for n in range(1, SLOTS + 1):
        head += [f"Healthcare Provider Taxonomy Code_{n}", f"Provider License Number_{n}",
                 f"Provider License Number State Code_{n}",
                 f"Healthcare Provider Primary Taxonomy Switch_{n}"]
    for n in range(1, 51):
        head += [f"Other Provider Identifier_{n}", f"Other Provider Identifier Type Code_{n}",
                 f"Other Provider Identifier State_{n}", f"Other Provider Identifier Issuer_{n}"]
    head += ["Is Sole Proprietor", "Is Organization Subpart", "Parent Organization LBN",
             "Parent Organization TIN", "Authorized Official Name Prefix Text",
             "Authorized Official Name Suffix Text", "Authorized Official Credential Text"]
    head += [f"Healthcare Provider Taxonomy Group_{n}" for n in range(1, SLOTS + 1)]
    head += ["Certification Date"]
    return head


HEADER = nppes_header()
assert len(HEADER) == 330

#: Behavioral-health organization taxonomy codes (docs/domain.md section 4).
BEHAVIORAL_ORGANIZATION_CODES = frozenset({
    "261QM0801X", "261QM0850X", "261QM0855X", "261QR0405X", "251S00000X", "283Q00000X",
    "273R00000X", "324500000X", "323P00000X", "320800000X"})

#: When several codes give the role and none of them is the primary, the most specific wins.
TYPE_PREFERENCE = ("psychiatrist", "psychiatric_np", "prescribing_psychologist",
                   "addiction_medicine", "nurse_practitioner", "physician_assistant",
                   "primary_care", "psychologist", "clinical_social_worker",
                   "marriage_family_therapist", "counselor", "psychoanalyst", "behavior_analyst")


class HeaderError(ValueError):
    """The file's header is not an NPPES data file header."""


@dataclass
class NppesRecord:
    """One NPPES record, normalized from either source."""

    npi: str
    entity_type: str
    organization_name: str = ""
    last_name: str = ""
    first_name: str = ""
    credentials: str = ""
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    phone: str = ""
    deactivated_on: dt.date | None = None
    reactivated_on: dt.date | None = None
    sex: str = ""
    taxonomies: list[tuple[str, str, str]] = field(default_factory=list)  # code, state, switch


@dataclass
class Classified:
    """What a record is for the directory."""

    kind: str  # "therapist", "prescriber", "clinic", "deactivated" or "skip"
    npi: str
    reason: str | None = None
    values: dict = field(default_factory=dict)


def clean(value: str) -> str:
    """Trim and collapse inner whitespace; apostrophes and case are kept."""
    return " ".join(value.split())


def _date(value: str) -> dt.date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return dt.datetime.strptime(value, "%m/%d/%Y").date()
    except ValueError:
        return None


def five_digit_zip(value: str) -> str | None:
    """First five digits of a 5- or 9-digit postal code (leading zeros kept), else None."""
    digits = value.strip()
    if re.fullmatch(r"\d{5}|\d{9}", digits):
        return digits[:5]
    return None


def primary_code(taxonomies: list[tuple[str, str, str]]) -> str | None:
    """The slot whose switch is Y; if none and there is only one code, that one."""
    for code, _, switch in taxonomies:
        if switch.upper() == "Y":
            return code
    return taxonomies[0][0] if len(taxonomies) == 1 else None


def is_deactivated(record: NppesRecord) -> bool:
    """Deactivated, without a later reactivation."""
    if record.deactivated_on is None:
        return False
    return record.reactivated_on is None or record.reactivated_on <= record.deactivated_on


def is_behavioral_organization(record: NppesRecord) -> bool:
    """An organization (entity type 2) the directory keeps as a clinic: one with a
    behavioral organization code, or with any individual therapist or prescriber code (a
    group practice: a psychology group with 103T00000X, a social-work group with
    1041C0700X, a psychiatry group with 2084P0800X). The excluded codes (psychiatric
    registered nurses, school and pastoral counselors, ...) count for nothing."""
    codes = [code for code, _, _ in record.taxonomies]
    if BEHAVIORAL_ORGANIZATION_CODES.intersection(codes):
        return True
    states = {state.strip().upper() for _, state, _ in record.taxonomies}
    return any(provider_type_for_code(code, states) is not None for code in codes)


def classify(record: NppesRecord, states: set[str] | None = None) -> Classified:
    """Classify one record by the import rules (see the module docstring)."""
    npi = record.npi.strip()
    if not is_valid_npi(npi):
        return Classified("skip", npi, "invalid_npi")
    if is_deactivated(record):
        return Classified("deactivated", npi)
    if record.entity_type == "":
        return Classified("skip", npi, "no_entity_type")
    codes = [code for code, _, _ in record.taxonomies]
    if record.entity_type == "2":
        if not is_behavioral_organization(record):
            return Classified("skip", npi, "organization_not_behavioral")
        if record.country not in ("", "US"):
            return Classified("skip", npi, "foreign_address")
        return Classified("clinic", npi, values={
            "name": clean(record.organization_name)[:200] or f"NPI {npi}",
            "organization_npi": npi, "phone": _phone(record.phone)})
    if record.entity_type != "1":
        return Classified("skip", npi, "unknown_entity_type")
    if record.country not in ("", "US"):
        return Classified("skip", npi, "foreign_address")
    state = record.state.strip().upper()
    if states is not None and state not in states:
        return Classified("skip", npi, "other_state")
    licensed = sorted({s.strip().upper() for _, s, _ in record.taxonomies
                       if s.strip().upper() in STATES})
    types = [provider_type_for_code(code, licensed) for code in codes]
    role = role_for_types(types)
    if role is None:
        if any(code in EXCLUDED_CODES for code in codes):
            return Classified("skip", npi, "excluded_taxonomy")
        return Classified("skip", npi, "not_behavioral")
    ours = []
    for code, found in zip(codes, types, strict=True):
        if found is not None and code not in ours:
            ours.append(code)
    primary = primary_code(record.taxonomies)
    candidates = [(code != primary, TYPE_PREFERENCE.index(found[1]), slot, found[1])
                  for slot, (code, found) in enumerate(zip(codes, types, strict=True))
                  if found and found[0] == role]
    provider_type = min(candidates)[3]
    zip_code = five_digit_zip(record.postal_code)
    place = lookup_zip(zip_code) if zip_code else None
    values = {
        "npi": npi, "first_name": clean(record.first_name)[:100],
        "last_name": clean(record.last_name)[:100],
        "credentials": clean(record.credentials)[:100] or None, "role": role,
        "provider_type": provider_type, "taxonomy_codes": ours,
        "licensed_states": licensed,
        "address_line1": clean(record.address_line1)[:200] or None,
        "address_line2": clean(record.address_line2)[:200] or None,
        "city": clean(record.city)[:100] or None,
        "state": state if state in STATES else None, "zip": zip_code,
        "latitude": place.latitude if place else None,
        "longitude": place.longitude if place else None,
    }
    values["sex"] = {"F": "female", "M": "male"}.get(record.sex.strip().upper())
    values["phone"] = _phone(record.phone)
    return Classified(role, npi, values=values)


def _phone(value: str) -> str | None:
    digits = re.sub(r"\D", "", value or "")
    return digits if len(digits) == 10 else None


# ---------------------------------------------------------------------------
# Sources


#: The columns a record is read from.
_NEEDED = ["NPI", "Entity Type Code", "Provider Organization Name (Legal Business Name)",
           "Provider Last Name (Legal Name)", "Provider First Name", "Provider Credential Text",
           "Provider First Line Business Practice Location Address",
           "Provider Second Line Business Practice Location Address",
           "Provider Business Practice Location Address City Name",
           "Provider Business Practice Location Address State Name",
           "Provider Business Practice Location Address Postal Code",
           "Provider Business Practice Location Address Country Code (If outside U.S.)",
           "Provider Business Practice Location Address Telephone Number",
           "NPI Deactivation Date", "NPI Reactivation Date", "Provider Sex Code"] + [
    name for n in range(1, SLOTS + 1)
    for name in (f"Healthcare Provider Taxonomy Code_{n}",
                 f"Provider License Number State Code_{n}",
                 f"Healthcare Provider Primary Taxonomy Switch_{n}")]


def _column_map(header: list[str]) -> dict[str, int]:
    positions = {name.strip(): index for index, name in enumerate(header)}
    if "Provider Gender Code" in positions and "Provider Sex Code" not in positions:
        positions["Provider Sex Code"] = positions["Provider Gender Code"]
    missing = [name for name in _NEEDED if name not in positions]
    if missing:
        raise HeaderError("Not an NPPES data file: missing columns " + ", ".join(
            repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else ""))
    return positions


def _reader_for(positions: dict[str, int]) -> tuple[Callable[[list[str]], NppesRecord],
                                                    Callable[[list[str]], NppesRecord]]:
    """Two functions of a row (of at least the read columns): its NppesRecord, and the same
    record without its taxonomy slots (for a row none of whose codes matters)."""
    p = positions
    npi, entity = p["NPI"], p["Entity Type Code"]
    org, last, first = (p["Provider Organization Name (Legal Business Name)"],
                        p["Provider Last Name (Legal Name)"], p["Provider First Name"])
    cred = p["Provider Credential Text"]
    line1 = p["Provider First Line Business Practice Location Address"]
    line2 = p["Provider Second Line Business Practice Location Address"]
    city = p["Provider Business Practice Location Address City Name"]
    state = p["Provider Business Practice Location Address State Name"]
    postal = p["Provider Business Practice Location Address Postal Code"]
    country = p["Provider Business Practice Location Address Country Code (If outside U.S.)"]
    phone = p["Provider Business Practice Location Address Telephone Number"]
    deact, react, sex = (p["NPI Deactivation Date"], p["NPI Reactivation Date"],
                         p["Provider Sex Code"])
    slots = [(p[f"Healthcare Provider Taxonomy Code_{n}"],
              p[f"Provider License Number State Code_{n}"],
              p[f"Healthcare Provider Primary Taxonomy Switch_{n}"])
             for n in range(1, SLOTS + 1)]
    width = _read_width(positions)

    def without_slots(row: list[str]) -> NppesRecord:
        if len(row) < width:
            row = row + [""] * (width - len(row))
        return NppesRecord(
            npi=row[npi], entity_type=row[entity].strip(), organization_name=row[org],
            last_name=row[last], first_name=row[first], credentials=row[cred],
            address_line1=row[line1], address_line2=row[line2], city=row[city],
            state=row[state], postal_code=row[postal], country=row[country].strip().upper(),
            phone=row[phone], deactivated_on=_date(row[deact]),
            reactivated_on=_date(row[react]), sex=row[sex])

    def read(row: list[str]) -> NppesRecord:
        if len(row) < width:
            row = row + [""] * (width - len(row))
        record = without_slots(row)
        record.taxonomies = [(row[c].strip().upper(), row[s], row[w]) for c, s, w in slots
                             if row[c].strip()]
        return record

    return read, without_slots


def _read_width(positions: dict[str, int]) -> int:
    """How many leading columns hold every column a record is read from."""
    return max(positions[name] for name in _NEEDED) + 1


def row_reader(header: list[str]) -> Callable[[list[str]], NppesRecord]:
    """The function turning a row of a file with this ``header`` into an NppesRecord;
    raises HeaderError when the header is not an NPPES data file's."""
    return _reader_for(_column_map(header))[0]


def matters(code: str) -> bool:
    """True when a rule of ``classify`` looks at this taxonomy code (normalized: trimmed,
    upper case): a behavioral-organization code, an excluded one, or one that gives a role
    (in any state). A record none of whose codes matters classifies exactly as the same
    record without taxonomy slots: the licensed states and the primary code only count
    once some code gives a role."""
    return (code in BEHAVIORAL_ORGANIZATION_CODES or code in EXCLUDED_CODES
            or provider_type_for_code(code) is not None)


#: Raw slot values remembered per reader of lines as mattering or not (bounded: a file
#: has a few hundred distinct codes; past this, unseen values are looked at every time).
_REMEMBERED_CODES = 10_000


def lines_reader(header: list[str]) -> Callable[[Iterable[str]], Iterator[NppesRecord]]:
    """The function turning lines of a file with this ``header`` (whole records, as read
    with ``newline=""``) into their NppesRecords, the records ``read_csv`` gives.

    A plain line, every value quoted and no quote inside a value (the CMS writes nearly
    every line so), is split on ``","`` up to the last read column instead of parsed whole
    by ``csv``: its count of quotes is twice the columns and it holds one separator fewer
    than columns between its first and last quote, so every quote is a value's own and the
    split is exactly csv's reading. Any other line (a quote or a line break inside a value,
    a short row) is read by ``csv``, which takes as many lines as the record spans. A row
    none of whose taxonomy codes ``matters`` is read without its slots (see ``matters``).
    Raises HeaderError when the header is not an NPPES data file's."""
    positions = _column_map(header)
    read, without_slots = _reader_for(positions)
    columns = len(header)
    quotes, separators = 2 * columns, columns - 1
    split = min(_read_width(positions), columns - 1)
    codes_of = operator.itemgetter(*(positions[f"Healthcare Provider Taxonomy Code_{n}"]
                                     for n in range(1, SLOTS + 1)))
    unmatter: set[str] = {""}  # raw slot values whose code does not matter (or no code)
    mattering: set[str] = set()

    def none_matters(codes: tuple[str, ...]) -> bool:
        if unmatter.issuperset(codes):
            return True
        for raw in codes:
            if raw in unmatter or raw in mattering:
                continue
            if len(unmatter) + len(mattering) >= _REMEMBERED_CODES:
                return False
            (mattering if matters(raw.strip().upper()) else unmatter).add(raw)
        return unmatter.issuperset(codes)

    def records(lines: Iterable[str]) -> Iterator[NppesRecord]:
        lines = iter(lines)
        for line in lines:
            plain = line.rstrip("\r\n")
            if (plain.count('"') == quotes and plain[:1] == '"' and plain[-1:] == '"'
                    and plain.count('","', 1, len(plain) - 1) == separators):
                row = plain[1:-1].split('","', split)
                yield without_slots(row) if none_matters(codes_of(row)) else read(row)
                continue
            # csv reads this record from its first line on, taking the lines it spans
            row = next(csv.reader(itertools.chain((line,), lines)), None)
            if row:
                yield read(row)

    return records


def read_csv(lines: Iterator[str]) -> Iterator[NppesRecord]:
    """NppesRecords from the lines of an NPPES data file (header first), streamed."""
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise HeaderError("The file is empty.") from None
    read = row_reader(header)
    for row in reader:
        if row:
            yield read(row)


def read_registry_json(document: dict | list) -> Iterator[NppesRecord]:
    """NppesRecords from saved NPI Registry API v2.1 responses (``results[]``)."""
    results = document.get("results", []) if isinstance(document, dict) else document
    for result in results:
        basic = result.get("basic") or {}
        location = next((a for a in result.get("addresses") or []
                         if (a.get("address_purpose") or "").upper() == "LOCATION"), {})
        kind = str(result.get("enumeration_type") or "")
        entity = {"NPI-1": "1", "NPI-2": "2"}.get(kind, "")
        taxonomies = [((t.get("code") or "").strip().upper(), t.get("state") or "",
                       "Y" if t.get("primary") is True else "N")
                      for t in result.get("taxonomies") or [] if t.get("code")]
        deactivated = _iso_or_us_date(basic.get("deactivation_date"))
        if (basic.get("status") or "A").upper() == "D" and deactivated is None:
            deactivated = dt.date.min
        yield NppesRecord(
            npi=str(result.get("number") or ""), entity_type=entity,
            organization_name=basic.get("organization_name") or "",
            last_name=basic.get("last_name") or "", first_name=basic.get("first_name") or "",
            credentials=basic.get("credential") or "",
            address_line1=location.get("address_1") or "",
            address_line2=location.get("address_2") or "", city=location.get("city") or "",
            state=location.get("state") or "", postal_code=location.get("postal_code") or "",
            country=(location.get("country_code") or "").upper(),
            phone=location.get("telephone_number") or "", deactivated_on=deactivated,
            reactivated_on=_iso_or_us_date(basic.get("reactivation_date")),
            sex=basic.get("sex") or basic.get("gender") or "", taxonomies=taxonomies)


def _iso_or_us_date(value) -> dt.date | None:
    if not value:
        return None
    for pattern in ("%Y-%m-%d", "%m/%d/%Y"):
        try:
            return dt.datetime.strptime(str(value), pattern).date()
        except ValueError:
            continue
    return None


def load_registry_json(path: str) -> Iterator[NppesRecord]:
    """Records of a saved NPI Registry response file (one JSON document)."""
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    yield from read_registry_json(document)
