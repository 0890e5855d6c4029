"""Offline geocoding of US ZIP codes and geodesic distances.

ZIP centroids come from the bundled public data of the ``zipcodes`` package,
loaded once into memory. ``ZipGeocoder`` has geopy's geocoder interface, so an
online geopy geocoder can be configured for street addresses without changing
callers; nothing here touches the network.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import zipcodes
from geopy.distance import geodesic
from geopy.geocoders.base import Geocoder
from geopy.location import Location

_ZIP_IN_TEXT = re.compile(r"\b(\d{5})(?:-?\d{4})?\b")


@dataclass(frozen=True, slots=True)
class ZipPlace:
    """One ZIP code's centroid and its city and state."""

    zip: str
    city: str
    state: str
    latitude: float
    longitude: float
    kind: str


@functools.cache
def zip_table() -> dict[str, ZipPlace]:
    """All US ZIP codes with a centroid, keyed by the five-digit ZIP (loaded once)."""
    table = {}
    for row in zipcodes.list_all():
        if not row.get("lat") or not row.get("long"):
            continue
        table[row["zip_code"]] = ZipPlace(
            zip=row["zip_code"], city=row["city"], state=row["state"],
            latitude=float(row["lat"]), longitude=float(row["long"]),
            kind=row["zip_code_type"])
    return table


def normalize_zip(value: str) -> str | None:
    """Five-digit ZIP from ``02115``, ``02115-1234`` or ``021151234``; None if malformed."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    match = re.fullmatch(r"(\d{5})(?:-?\d{4})?", value)
    return match.group(1) if match else None


def lookup_zip(value: str) -> ZipPlace | None:
    """The bundled record for a ZIP code (any accepted spelling), or None if unknown."""
    five = normalize_zip(value)
    return zip_table().get(five) if five else None


@functools.cache
def _zip_arrays():
    import numpy as np

    places = list(zip_table().values())
    return places, np.array([p.latitude for p in places]), np.array([p.longitude for p in places])


def nearest_place(latitude: float, longitude: float) -> ZipPlace:
    """The ZIP whose centroid is nearest to a point (to know which state a point is in)."""
    import numpy as np

    places, lats, lons = _zip_arrays()
    scale = np.cos(np.radians(latitude))
    index = int(np.argmin((lats - latitude) ** 2 + ((lons - longitude) * scale) ** 2))
    return places[index]


_GEODESIC = geodesic()  # one instance keeps its geographiclib solver between calls
_KM_PER_MILE = 1.609344


@functools.lru_cache(maxsize=1 << 16)
def distance_miles(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Geodesic (WGS-84, geopy) distance in miles between two (latitude, longitude) points.

    Remembered per pair of points (tuples): listings share ZIP centroids, so a page of
    results, and the next patient from the same ZIP, ask for the same few pairs, and
    geopy's exact geodesic costs ~50 microseconds a pair.
    """
    return _GEODESIC.measure(a, b) / _KM_PER_MILE


class ZipGeocoder(Geocoder):
    """A geopy geocoder that answers US ZIP codes from bundled data, offline.

    ``geocode("02115")`` or ``geocode("1 Main St, Boston, MA 02115")`` returns the
    ZIP centroid as a ``geopy.location.Location``; text without a known ZIP
    returns None. It never opens a connection.
    """

    def __init__(self) -> None:
        super().__init__()

    def geocode(self, query, *, exactly_one=True, timeout=None):
        """Geocode the first ZIP code in ``query``; a list when ``exactly_one`` is false."""
        match = _ZIP_IN_TEXT.search(str(query or ""))
        place = zip_table().get(match.group(1)) if match else None
        if place is None:
            return None
        location = Location(
            f"{place.city}, {place.state} {place.zip}, USA",
            (place.latitude, place.longitude),
            {"zip": place.zip, "city": place.city, "state": place.state})
        return location if exactly_one else [location]

    def reverse(self, query, *, exactly_one=True, timeout=None):
        """Nearest ZIP centroid to a (latitude, longitude) point."""
        lat, lon = (float(part) for part in (query.split(",") if isinstance(query, str) else query))
        return self.geocode(nearest_place(lat, lon).zip, exactly_one=exactly_one)


def make_geocoder(name: str, user_agent: str = ""):
    """Build the configured geocoder: ``zip`` (offline, default) or ``nominatim`` (online)."""
    if name == "zip":
        return ZipGeocoder()
    if name == "nominatim":
        from geopy.geocoders import Nominatim
        if not user_agent:
            raise RuntimeError("GEOCODER=nominatim needs GEOCODER_USER_AGENT")
        return Nominatim(user_agent=user_agent)
    raise RuntimeError(f"unknown GEOCODER {name!r}: use 'zip' or 'nominatim'")


def locate_practice(geocoder, *, address: str | None, city: str | None, state: str | None,
                    zip_code: str) -> tuple[float, float] | None:
    """Latitude and longitude of a practice: the configured geocoder on the full
    address when it is an online one, else (or on failure) the ZIP centroid."""
    if not isinstance(geocoder, ZipGeocoder) and address:
        try:
            found = geocoder.geocode(f"{address}, {city or ''}, {state or ''} {zip_code}, USA")
        except Exception:  # an online geocoder failing must not block a listing
            found = None
        if found is not None:
            return found.latitude, found.longitude
    place = lookup_zip(zip_code)
    return (place.latitude, place.longitude) if place else None
