"""Read a photo safely: decode it fully, take its EXIF time and GPS, keep a small RGB copy.

Hostile images are the norm on a phone's storage (half-synced files, downloads), so:
- the declared pixel count is checked against ``Limits.max_image_pixels`` before decoding, and
  Pillow's ``DecompressionBombWarning`` is raised as an error (it fires above Pillow's own
  ``MAX_IMAGE_PIXELS``, which we leave untouched: it is process-wide state);
- the image is fully decoded (``load()``), so a truncated file fails here instead of in the
  tagger. This relies on Pillow's default ``ImageFile.LOAD_TRUNCATED_IMAGES = False``;
- JPEGs are decoded at reduced scale (``draft``), then downscaled to ``thumb_px`` on the long
  side, which bounds memory whatever the camera resolution.

EXIF times (DateTimeOriginal, else DateTime) carry no zone. With OffsetTimeOriginal we use it;
otherwise the time is read as local time of this device, which is what a person means by
"photos from last Sunday".
"""

from __future__ import annotations

import io
import math
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from aios.index.extract import Extracted, Limits, SkipFile

EXIF_IFD = 0x8769
GPS_IFD = 0x8825
DATETIME_ORIGINAL = 0x9003
OFFSET_TIME_ORIGINAL = 0x9011
DATETIME = 0x0132
IMAGE_DESCRIPTION = 0x010E
MAKE, MODEL = 0x010F, 0x0110
ORIENTATION = 0x0112


def _format_name(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    return "jpeg" if ext == "jpg" else ext


def extract_photo(path: Path, data: bytes, limits: Limits) -> Extracted:
    fmt = _format_name(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > limits.max_image_pixels:
                raise SkipFile(
                    f"image too large: {width}x{height} pixels > {limits.max_image_pixels} "
                    "(possible decompression bomb)"
                )
            exif = img.getexif()
            if img.format == "JPEG":
                img.draft("RGB", (limits.thumb_px, limits.thumb_px))
            img.load()
            thumb = _thumbnail(img, limits.thumb_px, exif.get(ORIENTATION))
    except SkipFile:
        raise
    except UnidentifiedImageError:
        if fmt in ("heic", "heif"):
            raise SkipFile(f"{fmt}: no decoder installed (pillow-heif)") from None
        raise SkipFile(f"{fmt}: not a readable image") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise SkipFile(f"image too large: {exc} (possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncation and corrupt streams as OSError/SyntaxError.
        raise SkipFile(f"truncated or corrupt {fmt.upper()}: {exc}") from None
    except Exception as exc:  # decoders raise anything on malicious input
        raise SkipFile(f"{fmt}: cannot decode ({type(exc).__name__}: {exc})") from None
    meta: dict[str, Any] = {"width": width, "height": height}
    meta.update(_exif_meta(exif))
    title = meta.pop("description", None)
    return Extracted("photo", title, "", meta, thumb)


# EXIF orientation → the transposition that shows the photo upright (1 = already upright).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _thumbnail(img: Image.Image, px: int, orientation: Any) -> Image.Image:
    """A small upright RGB copy: taggers are trained on upright photos."""
    rgb = img.convert("RGB")
    rgb.thumbnail((px, px), Image.Resampling.BILINEAR)
    transpose = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return rgb.transpose(transpose) if transpose is not None else rgb


def _exif_meta(exif: Image.Exif) -> dict[str, Any]:
    """created_at, lat/lon, camera, description; each dropped if absent or malformed."""
    meta: dict[str, Any] = {}
    try:
        sub = exif.get_ifd(EXIF_IFD)
        gps = exif.get_ifd(GPS_IFD)
    except Exception:  # a broken IFD pointer: keep the pixels, lose the metadata
        return meta
    created = parse_exif_time(
        sub.get(DATETIME_ORIGINAL) or exif.get(DATETIME), sub.get(OFFSET_TIME_ORIGINAL)
    )
    if created is not None:
        meta["created_at"] = created
    position = gps_position(gps)
    if position is not None:
        meta["lat"], meta["lon"] = position
    camera = " ".join(str(exif.get(t, "")).strip("\x00 ") for t in (MAKE, MODEL)).strip()
    if camera:
        meta["camera"] = camera[:80]
    desc = exif.get(IMAGE_DESCRIPTION)
    if isinstance(desc, str) and desc.strip("\x00 "):
        meta["description"] = desc.strip("\x00 ")[:200]
    return meta


def parse_exif_time(value: Any, offset: Any = None) -> float | None:
    """'YYYY:MM:DD HH:MM:SS' → unix seconds; None when missing or nonsense (0000:00:00...)."""
    if not isinstance(value, str):
        return None
    try:
        naive = datetime.strptime(value.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if naive.year < 1900:
        return None
    tz = _offset(offset)
    if tz is not None:
        return naive.replace(tzinfo=tz).timestamp()
    try:
        return naive.timestamp()  # local time of this device (see the module docstring)
    except (OverflowError, OSError, ValueError):
        return None


def _offset(value: Any) -> timezone | None:
    if not isinstance(value, str) or len(value.strip()) < 6:
        return None
    text = value.strip()
    try:
        sign = -1 if text[0] == "-" else 1
        hours, minutes = int(text[1:3]), int(text[4:6])
    except ValueError:
        return None
    if hours > 14 or minutes > 59:
        return None
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _dms(value: Any) -> float | None:
    try:
        d, m, s = (float(x) for x in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    result = d + m / 60 + s / 3600
    return result if math.isfinite(result) else None


def gps_position(gps: dict[int, Any]) -> tuple[float, float] | None:
    """Decimal (lat, lon) from a GPS IFD with its N/S/E/W refs, or None when absent, out of
    range, or exactly (0, 0) (what many phones write when they had no fix)."""
    if not gps:
        return None
    lat, lon = _dms(gps.get(2)), _dms(gps.get(4))
    if lat is None or lon is None:
        return None
    lat_ref, lon_ref = str(gps.get(1, "N")).strip("\x00 ").upper(), str(gps.get(3, "E")).upper()
    if lat_ref.startswith("S"):
        lat = -lat
    if lon_ref.strip("\x00 ").startswith("W"):
        lon = -lon
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return round(lat, 7), round(lon, 7)
