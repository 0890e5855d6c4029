"""Listings as CSV: reading an uploaded file into rows, writing rows out.

The header row names listing fields (as in the JSON API). List fields hold
several values separated by ``;`` (``CBT;DBT``). Empty cells mean "not given".

Quoting is strict: a quote that is never closed (which would silently swallow the
rest of the file into one cell) or text after a closing quote is refused with the
row where it happens.

Spreadsheet formulas: a text cell that starts with ``=``, ``+``, ``-``, ``@``, tab or
carriage return would run as a formula when the exported file is opened in a
spreadsheet (CSV injection). ``rows_to_csv``, the one CSV writer, prefixes such cells
with a single quote; numbers (a negative longitude) stay numbers. Reading removes
that one quote again, so an exported file uploads back unchanged.
"""

from __future__ import annotations

import csv
import io

from .errors import Invalid
from .schemas.listings import LIST_FIELDS, LISTING_FIELDS

LIST_SEPARATOR = ";"
#: First characters that make a spreadsheet read a text cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def rows_from_csv(data: bytes | str) -> list[dict]:
    """Parse a CSV upload into raw rows; a bad header or encoding is ``Invalid``."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Invalid("The CSV file is not UTF-8 text.", {"file": ["Not UTF-8."]}) from None
    reader = csv.reader(io.StringIO(data, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise Invalid("The CSV file is empty.", {"file": ["No header row."]}) from None
    except csv.Error as error:
        raise Invalid(f"The CSV file cannot be read: {error}.", {"file": [str(error)]}) from None
    header = [name.strip().lower() for name in header]
    unknown = [name for name in header if name not in LISTING_FIELDS]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if unknown or duplicated or not any(header):
        errors = {}
        if unknown:
            errors["header"] = [f"Unknown column {name!r}." for name in unknown]
        if duplicated:
            errors.setdefault("header", []).extend(
                f"Column {n!r} appears twice." for n in duplicated)
        raise Invalid("The CSV header names columns that are not listing fields.",
                      errors or {"header": ["Empty header."]})
    rows: list[dict] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank line
            cells = [_unescape_formula(cell) for cell in cells]
            row: dict = {}
            if len(cells) > len(header):
                row["_extra_cells"] = cells[len(header):]
            for name, cell in zip(header, cells, strict=False):
                if name in LIST_FIELDS:
                    row[name] = [part.strip() for part in cell.split(LIST_SEPARATOR)
                                 if part.strip()]
                else:
                    row[name] = cell
            rows.append(row)
    except csv.Error as error:
        number = len(rows) + 1
        raise Invalid(f"Row {number} of the CSV file cannot be read: {error} "
                      "(is a quote left open?); nothing was written.",
                      {"rows": [{"row": number, "field": "_row",
                                 "message": f"Cannot be read: {error}."}]}) from None
    return rows


def _unescape_formula(cell: str) -> str:
    """A cell as ``rows_to_csv`` neutralised it, back as it was (``'=x`` -> ``=x``)."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def neutralise_formula(value):
    """A text cell a spreadsheet would run as a formula, prefixed with ``'``; anything
    else (numbers included) as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def rows_to_csv(rows: list[dict]) -> str:
    """Write listing dicts as CSV with every listing field as a column; text cells that
    a spreadsheet would run as formulas are neutralised (module docstring)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LISTING_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({
            key: neutralise_formula(LIST_SEPARATOR.join(value) if isinstance(value, list)
                                    else value)
            for key, value in row.items() if value is not None})
    return out.getvalue()
