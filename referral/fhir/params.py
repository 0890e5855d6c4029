"""Reading FHIR search requests: parameter names, modifiers, chains and values.

Follows the FHIR R4 search rules the API needs: comma means OR and a repeated
parameter means AND; ``\\,``, ``\\|``, ``\\$`` and ``\\\\`` escape; a parameter
with no value is ignored; unknown parameters are ignored unless the client sends
``Prefer: handling=strict`` (then 400); an unsupported modifier is always refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass, field

from .outcome import FhirError

#: Parameters about the result set rather than the resources.
CONTROL_PARAMS = ("_count", "_cursor", "_include", "_revinclude", "_total", "_format", "_pretty")
DEFAULT_COUNT = 20
MAX_COUNT = 200
JSON_FORMATS = ("json", "application/json", "application/fhir+json", "application/json+fhir")
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")

#: Units accepted by ``near`` and their length in kilometres.
DISTANCE_UNITS = {"km": 1.0, "m": 0.001, "[mi_i]": 1.609344, "mi": 1.609344,
                  "[mi_us]": 1.609347}
NEAR_DEFAULT_KM = 50.0
NEAR_MAX_KM = 500.0

_CURSOR = re.compile(r"^(\d{1,18})\.(\d{1,20})\.([0-9a-f]{16})$")
#: How long a next link stays valid, and how far another node's clock may be ahead.
CURSOR_LIFETIME = dt.timedelta(hours=24)
CLOCK_SKEW = dt.timedelta(minutes=5)
_DATE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$")


@dataclass(frozen=True)
class Occurrence:
    """One search parameter as given: ``name[:modifier][.chain[:chain_modifier]]=values``."""

    key: str
    raw: str
    name: str
    modifier: str | None = None
    chain: str | None = None
    chain_modifier: str | None = None

    def values(self) -> list[str]:
        """The comma-separated alternatives, unescaped except for ``|`` (tokens split on it)."""
        return [part for part in split_unescaped(self.raw, ",")]

    def unchained(self) -> Occurrence:
        """The chained part as an occurrence of its own (for the target resource type)."""
        return Occurrence(key=self.key, raw=self.raw, name=self.chain,
                          modifier=self.chain_modifier)


def _signature(secret: str, position: str) -> str:
    return hmac.new(secret.encode(), f"fhir-cursor:{position}".encode(),
                    hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after listing/clinic id ``after``, evaluated at ``at``.

    The token is signed with the app's secret key: the moment decides which listings are
    still visible, so a client must not be able to move it (and see hidden listings).
    """

    after: int
    at: dt.datetime

    def token(self, secret: str) -> str:
        """The opaque, signed ``_cursor`` value of a paging link."""
        micros = int(self.at.timestamp()) * 1_000_000 + self.at.microsecond
        position = f"{self.after}.{micros}"
        return f"{position}.{_signature(secret, position)}"


@dataclass
class SearchRequest:
    """A parsed search: filters, paging, includes and what was ignored."""

    occurrences: list[Occurrence] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    cursor: Cursor | None = None
    includes: list[str] = field(default_factory=list)
    revincludes: list[str] = field(default_factory=list)
    total: bool = True
    strict: bool = False
    ignored: list[str] = field(default_factory=list)
    used: list[tuple[str, str]] = field(default_factory=list)


def split_unescaped(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is not escaped with a backslash; unescape the parts
    (a backslash before ``|`` is kept when splitting on commas, for token values)."""
    parts, current, index = [], [], 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            if following == "|" and separator != "|":
                current.append("\\|")
            else:
                current.append(following)
            index += 2
            continue
        if char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def split_key(key: str) -> tuple[str, str | None, str | None, str | None]:
    """``name[:modifier][.chain[:modifier]]`` -> ``(name, modifier, chain, chain_modifier)``."""
    head, dot, rest = key.partition(".")
    name, _, modifier = head.partition(":")
    chain = chain_modifier = None
    if dot:
        chain, _, chain_modifier = rest.partition(":")
        if "." in chain or "." in chain_modifier:
            raise FhirError(400, f"Chained parameter {key!r}: only one level of chaining is "
                                 "supported.", code="not-supported", expression=key)
    return name, modifier or None, chain or None, chain_modifier or None


def wants_strict(prefer_header: str | None) -> bool:
    """True when the ``Prefer`` header asks for ``handling=strict``."""
    if not prefer_header:
        return False
    return any(part.strip().lower() == "handling=strict" for part in
               re.split(r"[;,]", prefer_header))


def parse_count(value: str) -> int:
    """``_count``: a whole number >= 0, at most ``MAX_COUNT`` (larger asks get ``MAX_COUNT``)."""
    if not re.fullmatch(r"\d{1,9}", value):
        raise FhirError(400, f"_count must be a whole number, not {value!r}.", expression="_count")
    return min(int(value), MAX_COUNT)


def parse_cursor(value: str, secret: str, now: dt.datetime) -> Cursor:
    """The ``_cursor`` of a paging link made by this server (signed, at most a day old)."""
    match = _CURSOR.match(value)
    if not match or not hmac.compare_digest(
            match.group(3), _signature(secret, f"{match.group(1)}.{match.group(2)}")):
        raise FhirError(400, "_cursor is not a paging position made by this server; follow "
                             "the Bundle's next link as given.", expression="_cursor")
    micros = int(match.group(2))
    try:
        at = dt.datetime.fromtimestamp(micros // 1_000_000, dt.UTC).replace(
            microsecond=micros % 1_000_000)
    except (OverflowError, OSError, ValueError):
        raise FhirError(400, "_cursor is out of range.", expression="_cursor") from None
    if not now - CURSOR_LIFETIME <= at <= now + CLOCK_SKEW:
        raise FhirError(400, "This paging link has expired; start the search again.",
                        expression="_cursor")
    return Cursor(after=int(match.group(1)), at=at)


def parse_token(value: str) -> tuple[str | None, str]:
    """``code`` -> ``(None, code)``; ``system|code`` -> ``(system, code)``;
    ``|code`` -> ``("", code)``."""
    parts = split_unescaped(value, "|")
    if len(parts) == 1:
        return None, parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise FhirError(400, f"Token {value!r} has more than one '|'.")


def parse_reference(value: str) -> tuple[str | None, str]:
    """``Type/id``, ``id`` or ``[base]/Type/id`` -> ``(type or None, id)``."""
    parts = [part for part in value.split("/") if part]
    if len(parts) >= 2 and re.fullmatch(r"[A-Z][A-Za-z]+", parts[-2]):
        return parts[-2], parts[-1]
    return None, parts[-1] if parts else ""


def parse_date(value: str) -> tuple[str, dt.datetime, dt.datetime]:
    """A date parameter value -> ``(prefix, start, end)``: the half-open UTC range it denotes.

    A value without a time zone is read as UTC.
    """
    prefix = "eq"
    if value[:2] in DATE_PREFIXES:
        prefix, value = value[:2], value[2:]
    match = _DATE.match(value)
    if not match:
        raise FhirError(400, f"{value!r} is not a FHIR date or dateTime (e.g. 2026-01-31 or "
                             "2026-01-31T09:30:00Z).")
    parts = match.groupdict()
    try:
        year = int(parts["year"])
        month = int(parts["month"] or 1)
        day = int(parts["day"] or 1)
        if parts["hour"] is None:
            start = dt.datetime(year, month, day, tzinfo=dt.UTC)
            if parts["day"]:
                end = start + dt.timedelta(days=1)
            elif parts["month"]:
                end = (start + dt.timedelta(days=32)).replace(day=1)
            else:
                end = start.replace(year=year + 1)
            return prefix, start, end
        zone = dt.UTC
        if parts["zone"] and parts["zone"] != "Z":
            sign = 1 if parts["zone"][0] == "+" else -1
            hours, minutes = int(parts["zone"][1:3]), int(parts["zone"][4:6])
            zone = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
        fraction = parts["fraction"] or ""
        micros = int((fraction + "000000")[:6]) if fraction else 0
        start = dt.datetime(year, month, day, int(parts["hour"]), int(parts["minute"]),
                            int(parts["second"] or 0), micros, tzinfo=zone)
        if parts["second"] is None:
            width = dt.timedelta(minutes=1)
        elif not fraction:
            width = dt.timedelta(seconds=1)
        else:
            width = dt.timedelta(microseconds=max(1, 10 ** (6 - min(len(fraction), 6))))
        return prefix, start.astimezone(dt.UTC), (start + width).astimezone(
            dt.UTC)
    except ValueError:
        raise FhirError(400, f"{value!r} is not a valid date.") from None


@dataclass(frozen=True)
class NearPoint:
    """A ``near`` search: the point, the radius in km and the unit answers are given in."""

    latitude: float
    longitude: float
    radius_km: float
    unit: str


def parse_near(value: str) -> NearPoint:
    """``latitude|longitude[|distance[|unit]]`` (unit ``km`` by default; also ``m``,
    ``[mi_i]``/``mi``); distance defaults to 50 km and may be at most 500 km."""
    parts = split_unescaped(value, "|")
    if not 2 <= len(parts) <= 4:
        raise FhirError(400, "near is latitude|longitude|distance|unit, e.g. "
                             "42.33|-71.10|10|km.", expression="near")
    try:
        latitude, longitude = float(parts[0]), float(parts[1])
        distance = float(parts[2]) if len(parts) > 2 and parts[2] else None
    except ValueError:
        raise FhirError(400, f"near {value!r}: latitude, longitude and distance are numbers.",
                        expression="near") from None
    unit = parts[3] if len(parts) > 3 and parts[3] else "km"
    if unit not in DISTANCE_UNITS:
        raise FhirError(400, f"near unit {unit!r} is not supported; use km, m or [mi_i].",
                        expression="near")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise FhirError(400, "near: latitude is within -90..90 and longitude within -180..180.",
                        expression="near")
    radius_km = NEAR_DEFAULT_KM if distance is None else distance * DISTANCE_UNITS[unit]
    if not 0 < radius_km <= NEAR_MAX_KM:
        raise FhirError(400, f"near: the distance must be more than 0 and at most "
                             f"{NEAR_MAX_KM:.0f} km.", expression="near")
    return NearPoint(latitude, longitude, radius_km, unit)


def parse_search(pairs: list[tuple[str, str]], known, strict: bool, secret: str,
                 now: dt.datetime) -> SearchRequest:
    """Read query ``pairs`` for a resource type whose parameter names satisfy ``known(name)``.

    Filters become ``Occurrence``s (checked against the resource type later);
    control parameters are read here. Unknown names are collected in ``ignored``.
    """
    request = SearchRequest(strict=strict)
    for key, raw in pairs:
        if raw == "":
            continue  # FHIR: a parameter without a value is ignored
        base = key.partition(":")[0]
        if key == "_count":
            request.count = parse_count(raw)
        elif key == "_cursor":
            request.cursor = parse_cursor(raw, secret, now)
            continue  # the self and next links set their own cursor
        elif key == "_include":
            request.includes.append(raw)
        elif key == "_revinclude":
            request.revincludes.append(raw)
        elif key == "_total":
            if raw not in ("none", "estimate", "accurate"):
                raise FhirError(400, "_total is none, estimate or accurate.", expression="_total")
            request.total = raw != "none"
        elif key == "_format":
            if raw not in JSON_FORMATS:
                raise FhirError(406, f"_format {raw!r} is not served; this server speaks "
                                     "application/fhir+json only.", expression="_format")
        elif key == "_pretty":
            pass
        elif base in CONTROL_PARAMS or not known(split_key(key)[0]):
            request.ignored.append(key)
            continue
        else:
            name, modifier, chain, chain_modifier = split_key(key)
            request.occurrences.append(Occurrence(key=key, raw=raw, name=name,
                                                  modifier=modifier, chain=chain,
                                                  chain_modifier=chain_modifier))
        request.used.append((key, raw))
    return request
