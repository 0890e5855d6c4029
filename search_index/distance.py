"""Vectorised ellipsoidal distances for filtering and ranking many providers at once.

Lambert's formula on the WGS-84 ellipsoid agrees with geopy's geodesic to about
ten metres at the distances a directory deals with, at numpy speed. Where a
radius decision is that close, ``within_radius`` settles it with geopy's exact
geodesic, so the radius filter agrees with ``geopy.distance.geodesic``.
"""

from __future__ import annotations

import numpy as np
from geopy.distance import geodesic

EARTH_A_MILES = 6378137.0 / 1609.344
FLATTENING = 1 / 298.257223563
#: Relative band around the radius in which the exact geodesic decides.
EXACT_BAND = 1e-3


def lambert_miles(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Distances in miles from one point to many (NaN coordinates give NaN)."""
    f = FLATTENING
    beta1 = np.arctan((1 - f) * np.tan(np.radians(lat)))
    beta2 = np.arctan((1 - f) * np.tan(np.radians(lats)))
    dlon = np.radians(lons - lon)
    # central angle between the reduced latitudes (haversine, stable for small angles)
    h = np.sin((beta2 - beta1) / 2) ** 2 + np.cos(beta1) * np.cos(beta2) * np.sin(dlon / 2) ** 2
    sigma = 2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    p = (beta1 + beta2) / 2
    q = (beta2 - beta1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (sigma - np.sin(sigma)) * (np.sin(p) ** 2 * np.cos(q) ** 2) / np.cos(sigma / 2) ** 2
        y = (sigma + np.sin(sigma)) * (np.cos(p) ** 2 * np.sin(q) ** 2) / np.sin(sigma / 2) ** 2
        distance = EARTH_A_MILES * (sigma - f / 2 * (x + y))
    return np.where(sigma == 0, 0.0, distance)


def bounding_box(lat: float, lon: float, radius_miles: float) -> tuple[float, float, float, float]:
    """A latitude/longitude box that surely contains the circle (with a safety margin)."""
    dlat = radius_miles / 68.7 * 1.01 + 0.01
    cos_lat = max(np.cos(np.radians(min(89.0, abs(lat) + dlat))), 0.01)
    dlon = radius_miles / (69.172 * cos_lat) * 1.01 + 0.01
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


def within_radius(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray,
                  radius_miles: float) -> tuple[np.ndarray, np.ndarray]:
    """``(inside, distances)`` for candidate points; borderline ones use geopy's geodesic."""
    distances = lambert_miles(lat, lon, lats, lons)
    inside = distances <= radius_miles * (1 - EXACT_BAND)
    borderline = np.flatnonzero((distances > radius_miles * (1 - EXACT_BAND))
                                & (distances <= radius_miles * (1 + EXACT_BAND)))
    if len(borderline):
        # Listings share coordinates (geocoded from ZIP centroids): one exact geodesic per
        # place, not per listing.
        places, which = np.unique(np.column_stack([lats[borderline], lons[borderline]]),
                                  axis=0, return_inverse=True)
        exact = np.array([geodesic((lat, lon), (place_lat, place_lon)).miles
                          for place_lat, place_lon in places])
        distances[borderline] = exact[which.reshape(-1)]
        inside[borderline] = distances[borderline] <= radius_miles
    return inside, distances
