"""Files in the exact NPPES data-file format: a writer, and a generator for benchmarks.

Every value is quoted, lines end CRLF, the header is the CMS one (330 columns).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable

from referral.npi import make_npi
from referral.nppes import HEADER, nppes_header

from .generator import FIRST_NAMES, LAST_NAMES, STREETS, weighted_zips


def write_nppes_csv(handle, rows: Iterable[dict], header: list[str] | None = None) -> int:
    """Write rows (``{column name: value}``, absent columns blank) to an open text file."""
    header = header or HEADER
    writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(header)
    count = 0
    blank = [""] * len(header)
    index = {name: i for i, name in enumerate(header)}
    sex_column = next(n for n in header if n in ("Provider Sex Code", "Provider Gender Code"))
    for row in rows:
        values = list(blank)
        for name, value in row.items():
            if name == "Provider Sex Code":
                name = sex_column
            values[index[name]] = value
        writer.writerow(values)
        count += 1
    return count


def taxonomy_slots(*slots: tuple[str, str, str]) -> dict:
    """Columns for taxonomy slots given as (code, license state, primary switch)."""
    columns = {}
    for n, (code, state, switch) in enumerate(slots, start=1):
        columns[f"Healthcare Provider Taxonomy Code_{n}"] = code
        columns[f"Provider License Number_{n}"] = f"LIC{n}{code[:4]}" if code else ""
        columns[f"Provider License Number State Code_{n}"] = state
        columns[f"Healthcare Provider Primary Taxonomy Switch_{n}"] = switch
    return columns


_OTHER_CODES = ("207X00000X", "208000000X", "207V00000X", "1223G0001X", "152W00000X",
                "225100000X", "363LF0000X", "207RC0000X", "163W00000X", "332B00000X")
_THERAPIST_CODES = ("1041C0700X", "101YM0800X", "101YP2500X", "103T00000X", "106H00000X")
_PRESCRIBER_CODES = ("2084P0800X", "363LP0808X", "207Q00000X", "363A00000X")


def generate_rows(count: int, seed: int = 1) -> Iterable[dict]:
    """A realistic mix of NPPES rows: mostly other specialties, some behavioral
    individuals, organizations, deactivations and a few foreign addresses."""
    rng = random.Random(seed)
    places, cumulative = weighted_zips()
    for index in range(count):
        npi = make_npi(str(100_000_000 + (index * 7_919 + seed) % 900_000_000))
        roll = rng.random()
        if roll < 0.03:
            yield {"NPI": npi, "NPI Deactivation Date": "03/15/2021"}
            continue
        place = rng.choices(places, cum_weights=cumulative)[0]
        row = {
            "NPI": npi, "Entity Type Code": "1",
            "Provider Last Name (Legal Name)": rng.choice(LAST_NAMES).upper(),
            "Provider First Name": rng.choice(FIRST_NAMES).upper(),
            "Provider Credential Text": rng.choice(("MD", "LCSW", "PHD", "NP", "LPC", "DO")),
            "Provider First Line Business Practice Location Address":
                f"{rng.randint(1, 9999)} {rng.choice(STREETS).upper()}",
            "Provider Business Practice Location Address City Name": place.city.upper(),
            "Provider Business Practice Location Address State Name": place.state,
            "Provider Business Practice Location Address Postal Code":
                place.zip + (f"{rng.randint(0, 9999):04d}" if rng.random() < 0.6 else ""),
            "Provider Business Practice Location Address Country Code (If outside U.S.)": "US",
            "Provider Business Practice Location Address Telephone Number":
                f"{rng.randint(201, 989)}{rng.randint(2000000, 9999999)}",
            "Provider Enumeration Date": "05/23/2005", "Last Update Date": "07/08/2020",
            "Provider Sex Code": rng.choice("FM"),
        }
        if roll < 0.15:
            codes = [rng.choice(_THERAPIST_CODES)]
        elif roll < 0.20:
            codes = [rng.choice(_PRESCRIBER_CODES)]
        elif roll < 0.30:
            row["Entity Type Code"] = "2"
            row["Provider Organization Name (Legal Business Name)"] = \
                f"{place.city.upper()} HEALTH SERVICES LLC"
            codes = [rng.choice(("261QM0801X", "282N00000X", "332B00000X", "261QP2300X"))]
        elif roll < 0.31:
            row["Provider Business Practice Location Address Country Code (If outside U.S.)"] = "CA"
            codes = [rng.choice(_THERAPIST_CODES)]
        else:
            codes = [rng.choice(_OTHER_CODES)]
        if rng.random() < 0.3:
            codes.append(rng.choice(_OTHER_CODES + _THERAPIST_CODES))
        row.update(taxonomy_slots(*[(code, place.state, "Y" if n == 0 else "N")
                                    for n, code in enumerate(codes)]))
        yield row


def write_generated_file(path: str, count: int, seed: int = 1,
                         sex_column: str = "Provider Sex Code") -> int:
    """Write ``count`` generated rows to ``path`` in the exact NPPES format."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        return write_nppes_csv(handle, generate_rows(count, seed), nppes_header(sex_column))
