"""SQL building blocks for FHIR search that read the same on SQLite and PostgreSQL.

Listing attributes such as taxonomy codes and modalities are JSON arrays (JSONB on
PostgreSQL); ``json_array_has`` tests membership with ``json_each`` on SQLite and
``@>`` (which can use a GIN index) on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Boolean, String, and_, func, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class json_array_has(FunctionElement):  # noqa: N801 (an SQL function name)
    """``json_array_has(column, value)``: the JSON array in ``column`` holds ``value``."""

    type = Boolean()
    inherit_cache = True
    name = "json_array_has"


@compiles(json_array_has)
def _json_array_has_sqlite(element, compiler, **kw):
    column, value = list(element.clauses)
    return (f"EXISTS (SELECT 1 FROM json_each({compiler.process(column, **kw)}) "
            f"WHERE json_each.value = {compiler.process(value, **kw)})")


@compiles(json_array_has, "postgresql")
def _json_array_has_postgresql(element, compiler, **kw):
    column, value = list(element.clauses)
    return (f"({compiler.process(column, **kw)} @> "
            f"jsonb_build_array(CAST({compiler.process(value, **kw)} AS TEXT)))")


class json_array_nonempty(FunctionElement):  # noqa: N801
    """``json_array_nonempty(column)``: the JSON array in ``column`` has at least one value."""

    type = Boolean()
    inherit_cache = True
    name = "json_array_nonempty"


@compiles(json_array_nonempty)
def _json_array_nonempty_sqlite(element, compiler, **kw):
    (column,) = list(element.clauses)
    return f"(json_array_length({compiler.process(column, **kw)}) > 0)"


@compiles(json_array_nonempty, "postgresql")
def _json_array_nonempty_postgresql(element, compiler, **kw):
    (column,) = list(element.clauses)
    return f"(jsonb_array_length({compiler.process(column, **kw)}) > 0)"


def like_escape(text: str) -> str:
    """``text`` with LIKE wildcards escaped (the escape character is ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def string_matches(columns, value: str, modifier: str | None):
    """FHIR string matching of ``value`` against any of ``columns``.

    No modifier: case-insensitive starts-with; ``:contains``: case-insensitive
    substring; ``:exact``: exact, case-sensitive equality.
    """
    if modifier == "exact":
        return or_(*[column == value for column in columns])
    escaped = like_escape(value.lower())
    pattern = f"%{escaped}%" if modifier == "contains" else f"{escaped}%"
    if modifier is None and value.isascii() and value.isdigit():
        # Digits have no case: a key range first (so a ZIP prefix uses the zip index),
        # the LIKE keeps the answer exact whatever the collation.
        following = value[:-1] + chr(ord(value[-1]) + 1)
        return or_(*[and_(column >= value, column < following,
                          func.lower(column).like(pattern, escape="\\")) for column in columns])
    return or_(*[func.lower(column).like(pattern, escape="\\") for column in columns])


def text_literal(value: str):
    """A string literal usable in SQL string concatenation."""
    from sqlalchemy import literal

    return literal(value, String)
