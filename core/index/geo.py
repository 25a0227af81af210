"""Distance filters for ``IndexStore.filter_items``: a bounding box that SQL can use an index
for, then the exact great-circle (haversine) distance in numpy for the rows inside it."""

from __future__ import annotations

import math

import numpy as np

from aios.errors import IndexStoreError

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEG_LAT = 111.32


def bbox(lat: float, lon: float, km: float) -> tuple[str, list[float]]:
    """A SQL clause selecting a box that contains the circle; exact distance comes later."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or km < 0:
        raise IndexStoreError(f"invalid location filter ({lat}, {lon}, {km} km)")
    dlat = km / KM_PER_DEG_LAT
    lat_lo, lat_hi = lat - dlat, lat + dlat
    cos = math.cos(math.radians(lat))
    # Near a pole, or for huge radii, every longitude can be in range.
    if lat_hi >= 90 or lat_lo <= -90 or cos <= 1e-9 or km / (KM_PER_DEG_LAT * cos) >= 180:
        return "(lat BETWEEN ? AND ?)", [max(lat_lo, -90.0), min(lat_hi, 90.0)]
    dlon = km / (KM_PER_DEG_LAT * cos)
    lon_lo, lon_hi = lon - dlon, lon + dlon
    if lon_lo < -180:  # the box crosses the antimeridian: two longitude ranges
        return "(lat BETWEEN ? AND ? AND (lon >= ? OR lon <= ?))", [
            lat_lo,
            lat_hi,
            lon_lo + 360,
            lon_hi,
        ]
    if lon_hi > 180:
        return "(lat BETWEEN ? AND ? AND (lon >= ? OR lon <= ?))", [
            lat_lo,
            lat_hi,
            lon_lo,
            lon_hi - 360,
        ]
    return "(lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?)", [lat_lo, lat_hi, lon_lo, lon_hi]


def haversine_km(lat: np.ndarray, lon: np.ndarray, plat: float, plon: float) -> np.ndarray:
    """Great-circle distance in km from each (``lat``, ``lon``) to (``plat``, ``plon``), all in
    radians."""
    a = np.sin((lat - plat) / 2) ** 2 + np.cos(lat) * math.cos(plat) * np.sin((lon - plon) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
