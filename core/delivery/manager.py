"""Model downloads for one model dir: one at a time per model, shared by every caller.

``ModelDelivery.start`` runs a download on a background thread (or returns the one already
running); ``pull`` starts or joins it and waits. Progress is readable from any thread through
``progress`` (a ``ProgressRegistry``), which the feature status and the service read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from aios.backend import CancelSignal
from aios.config.schema import DeliverySettings, ModelSpec, OEMConfig
from aios.delivery.progress import Progress, ProgressRegistry
from aios.errors import AIOSError, CancelledError, DeliveryError
from aios.sources import model_dir, model_url

log = structlog.get_logger("aios.delivery")

_POLL_S = 0.1


@dataclass
class Job:
    """One download in flight; ``done`` is set once ``result`` or ``error`` is."""

    model: str
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    result: Path | None = None
    error: AIOSError | None = None


class ModelDelivery:
    def __init__(
        self,
        settings: DeliverySettings,
        model_dir: Path,
        progress: ProgressRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.model_dir = model_dir
        self.progress = progress or ProgressRegistry()
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    @classmethod
    def from_config(cls, cfg: OEMConfig, base_dir: Path) -> ModelDelivery:
        return cls(cfg.delivery, model_dir(cfg.storage.model_dir, base_dir))

    # -- what a model's download is ------------------------------------------------------
    def url(self, spec: ModelSpec) -> str:
        src = spec.source
        if src is None or not src.url:
            raise DeliveryError(f"model '{spec.id}' has no `source.url`: nothing to download")
        url = model_url(src, self.settings.base_url)
        if url is None:
            raise DeliveryError(
                f"model '{spec.id}': relative url '{src.url}' needs `delivery.base_url`"
            )
        return url

    def target(self, spec: ModelSpec) -> Path:
        assert spec.source is not None and spec.source.file
        return self.model_dir / spec.source.file

    def installed(self, spec: ModelSpec) -> bool:
        return self.target(spec).is_file()

    def partial_bytes(self, spec: ModelSpec) -> int:
        """Bytes of an interrupted download on disk (the next pull resumes from them)."""
        from aios.delivery.downloader import partial_path

        p = partial_path(self.target(spec))
        return p.stat().st_size if p.is_file() else 0

    def downloading(self, model_id: str) -> bool:
        with self._lock:
            return model_id in self._jobs

    # -- downloads -----------------------------------------------------------------------
    def start(self, spec: ModelSpec) -> Job:
        """The download of ``spec`` running now, started if none is (and the file is absent)."""
        url = self.url(spec)
        target = self.target(spec)
        with self._lock:
            job = self._jobs.get(spec.id)
            if job is not None:
                return job
            job = Job(spec.id)
            if target.is_file():
                job.result = target
                job.done.set()
                return job
            self._jobs[spec.id] = job
            assert spec.source is not None
            progress = self.progress.begin(spec.id, url, spec.source.size_bytes)
        thread = threading.Thread(
            target=self._run, args=(job, spec, url, target, progress), daemon=True
        )
        thread.name = f"aios-download-{spec.id}"
        thread.start()
        return job

    def _run(self, job: Job, spec: ModelSpec, url: str, target: Path, progress: Progress) -> None:
        from aios.delivery.downloader import download

        assert spec.source is not None and spec.source.sha256
        log.info("delivery.started", model=spec.id, url=url)
        try:
            job.result = download(
                url,
                target,
                sha256=spec.source.sha256,
                settings=self.settings,
                progress=progress,
                cancel=job.cancel,
                size_bytes=spec.source.size_bytes,
            )
            self.progress.end(spec.id)
        except CancelledError as exc:
            job.error = exc
            self.progress.end(spec.id)
        except AIOSError as exc:
            job.error = exc
            progress.set_state("failed", str(exc))
        except Exception as exc:  # OSError (disk full, permissions) or a bug: name it
            job.error = DeliveryError(
                f"download of model '{spec.id}' failed: {type(exc).__name__}: {exc}"
            )
            progress.set_state("failed", str(job.error))
        finally:
            with self._lock:
                self._jobs.pop(spec.id, None)
            job.done.set()
        if job.error is not None:
            log.warning("delivery.failed", model=spec.id, error=str(job.error))

    def pull(
        self,
        spec: ModelSpec,
        *,
        cancel: threading.Event | None = None,
        leave: CancelSignal | None = None,
        on_progress: Callable[[dict[str, object]], None] | None = None,
    ) -> Path:
        """Download ``spec`` (or join its running download) and wait; returns its file.

        Setting ``cancel`` (or Ctrl-C) cancels the download for every caller waiting on it;
        what is on disk stays, and the next pull resumes from it. Setting ``leave`` only stops
        this caller's wait (``CancelledError``): a cancelled request does not throw away a
        download that the next request will want.
        """
        job = self.start(spec)
        try:
            while not job.done.wait(_POLL_S):
                if cancel is not None and cancel.is_set():
                    job.cancel.set()
                if leave is not None and leave.is_set():
                    raise CancelledError(
                        f"request was cancelled while model '{spec.id}' was downloading "
                        "(the download goes on)"
                    )
                if on_progress is not None:
                    snap = self.progress.get(spec.id)
                    if snap is not None:
                        on_progress(snap)
        except CancelledError:
            raise
        except BaseException:  # KeyboardInterrupt: stop the download, keep what is on disk
            job.cancel.set()
            job.done.wait(5.0)
            raise
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def cancel(self, model_id: str) -> bool:
        """Cancel ``model_id``'s running download; False when none is running."""
        with self._lock:
            job = self._jobs.get(model_id)
        if job is None:
            return False
        job.cancel.set()
        return True
