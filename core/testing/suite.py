"""The backend conformance suite: the tests every aios backend passes, or skips saying why.

Subclass ``BackendConformance`` in a test module (as ``Test...``) and name the backends in
``backends``; each backend's sample comes from ``Backend.conformance_sample`` (or an override of
``make_sample``). Per backend, the tests share one loaded sample model and run in order.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from aios.backend import (
    Availability,
    Backend,
    Done,
    GenerationEvent,
    GenerationRequest,
    LoadedModel,
    TensorModel,
    TextGenerator,
    Token,
)
from aios.errors import AIOSError, ModelError
from aios.testing.sample import Sample

NO_SAMPLE = (
    "backend '{name}' supplies no conformance sample: implement Backend.conformance_sample "
    "(or override BackendConformance.make_sample)"
)
NO_STREAM = "a TensorModel answers run() with whole outputs: there is no token stream to check"


@dataclass(frozen=True)
class Unresolved:
    """A backend the suite was asked for but could not find; its tests fail with ``problem``."""

    name: str
    problem: str


@functools.cache
def registered() -> tuple[dict[str, type[Backend]], tuple[str, ...]]:
    """Backends the built-ins and installed ``aios`` entry points register, and plugin failures."""
    from aios.plugin_manager import build_plugin_manager

    ps = build_plugin_manager()
    failures = tuple(f"plugin '{f.plugin}' failed during {f.stage}: {f.error}" for f in ps.failures)
    return dict(ps.backends), failures


def targets(
    backends: Sequence[type[Backend] | str] | None, option: str | None
) -> list[tuple[str, type[Backend] | Unresolved]]:
    """(test id, backend) pairs: ``backends`` as given, or every registered backend (those
    named by ``--aios-conformance`` when it names some), plus every plugin that failed to load."""
    classes = [b for b in backends or () if isinstance(b, type)]
    if backends is not None and len(classes) == len(backends):
        return [(b.name, b) for b in classes]
    found, failures = registered()
    wanted: Sequence[type[Backend] | str]
    if backends is not None:
        wanted = backends
    elif option and option != "all":
        wanted = [n.strip() for n in option.split(",") if n.strip()]
    else:
        wanted = sorted(found)
    out: list[tuple[str, type[Backend] | Unresolved]] = []
    for b in wanted:
        if isinstance(b, type):
            out.append((b.name, b))
        elif b in found:
            out.append((b, found[b]))
        else:
            problem = (
                f"backend '{b}' is not registered by the built-ins or any installed aios plugin "
                f"(registered: {', '.join(sorted(found))})"
            )
            out.append((b, Unresolved(b, "; ".join((problem, *failures)))))
    if backends is None:  # a plugin that failed to load may be the backend under test
        out += [(f"plugin-failure-{i}", Unresolved("?", f)) for i, f in enumerate(failures)]
    return out


def _backend_class(value: type[Backend] | Unresolved) -> type[Backend]:
    if isinstance(value, Unresolved):
        pytest.fail(value.problem, pytrace=False)
    return value


def _stream(model: TextGenerator, request: GenerationRequest) -> list[GenerationEvent]:
    return list(model.stream(request))


def _use(model: LoadedModel, sample: Sample) -> Any:
    if isinstance(model, TextGenerator):
        return _stream(model, sample.request)
    assert isinstance(model, TensorModel)
    return model.run(dict(sample.inputs or {}))


def _raises(what: str, expected: type[Exception], call: Any) -> Exception:
    """Run ``call``; return the ``expected`` error it raised, or fail saying what happened."""
    try:
        result = call()
    except expected as exc:
        return exc
    except Exception as exc:
        pytest.fail(
            f"{what} raised {type(exc).__name__}: {exc}; the contract is {expected.__name__}",
            pytrace=False,
        )
    pytest.fail(f"{what} did not raise (returned {result!r:.100}); expected {expected.__name__}")


class BackendConformance:
    """The conformance tests; subclass as ``Test...`` and set ``backends``.

    ``backends``: backend classes, or names registered through the ``aios`` entry points (which
    also checks the registration); None: every registered backend, or those named by
    ``pytest --aios-conformance=NAME,...``.
    """

    backends: ClassVar[Sequence[type[Backend] | str] | None] = None

    def make_sample(self, backend_class: type[Backend], workdir: Path) -> Sample | None:
        """The sample model of ``backend_class``, written under ``workdir``; override to supply
        one for a backend that has no ``conformance_sample``."""
        return backend_class.conformance_sample(workdir)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "aios_backend_class" not in metafunc.fixturenames:
            return
        option = metafunc.config.getoption("aios_conformance", default=None)
        pairs = targets(self.backends, option)
        metafunc.parametrize(
            "aios_backend_class", [b for _, b in pairs], ids=[i for i, _ in pairs], scope="class"
        )

    # -- fixtures, one set per backend -----------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def aios_sample(
        cls, aios_backend_class: Any, tmp_path_factory: pytest.TempPathFactory
    ) -> Sample | None:
        backend = _backend_class(aios_backend_class)
        workdir = tmp_path_factory.mktemp(f"conformance-{backend.name}")
        sample = cls().make_sample(backend, workdir)
        assert sample is None or isinstance(sample, Sample), (
            f"the sample of '{backend.name}' is {sample!r:.100}, not an aios.testing.Sample"
        )
        return sample

    @pytest.fixture(scope="class")
    @classmethod
    def aios_probe(
        cls, aios_backend_class: Any, aios_sample: Sample | None
    ) -> tuple[Backend, Availability]:
        backend = _backend_class(aios_backend_class)()
        if aios_sample is not None and aios_sample.config is not None:
            backend.configure(aios_sample.config)
        return backend, backend.probe()

    @pytest.fixture(scope="class")
    @classmethod
    def aios_ready(
        cls, aios_probe: tuple[Backend, Availability], aios_sample: Sample | None
    ) -> tuple[Backend, Sample]:
        backend, avail = aios_probe
        if not getattr(avail, "available", False):
            pytest.skip(f"backend '{backend.name}' is unavailable: {avail.reason}")
        if aios_sample is None:
            pytest.skip(NO_SAMPLE.format(name=backend.name))
        return backend, aios_sample

    @pytest.fixture(scope="class")
    @classmethod
    def aios_model(cls, aios_ready: tuple[Backend, Sample]) -> Iterator[LoadedModel]:
        backend, sample = aios_ready
        model = backend.load(sample.spec, sample.path)
        try:
            yield model
        finally:
            model.close()

    # -- the contract ----------------------------------------------------------------------
    def test_declares_name_formats_description(self, aios_backend_class: Any) -> None:
        from aios.plugin_manager import _backend_problems

        cls = _backend_class(aios_backend_class)
        problems = _backend_problems(cls)
        assert not problems, f"{cls.__name__}: " + "; ".join(problems)
        assert cls.description.strip(), f"{cls.__name__}.description is empty"

    def test_probe_says_why(self, aios_probe: tuple[Backend, Availability]) -> None:
        backend, avail = aios_probe
        assert isinstance(avail, Availability), f"probe() returned {avail!r}, not Availability"
        assert isinstance(avail.available, bool), "Availability.available must be a bool"
        assert isinstance(avail.reason, str) and avail.reason.strip(), (
            "probe() must say what it found, or exactly what is missing (empty reason)"
        )
        again = backend.probe()
        assert again.available == avail.available, "probe() changed its answer when asked again"

    def test_loads_its_sample(self, aios_ready: tuple[Backend, Sample], aios_model: Any) -> None:
        backend, sample = aios_ready
        assert sample.spec.format in backend.formats, (
            f"the sample is {sample.spec.format.value}; backend formats are "
            f"{sorted(f.value for f in backend.formats)}"
        )
        assert isinstance(aios_model, TextGenerator | TensorModel), (
            f"load() returned {type(aios_model).__name__}, not a TextGenerator or TensorModel"
        )
        assert aios_model.spec == sample.spec, "the loaded model must carry the spec it was given"
        assert aios_model.backend_name == backend.name
        assert backend.health(sample.spec) is None, "a just-loaded model reports itself unhealthy"

    def test_generates_or_runs(self, aios_ready: tuple[Backend, Sample], aios_model: Any) -> None:
        _, sample = aios_ready
        if isinstance(aios_model, TextGenerator):
            events = _stream(aios_model, sample.request)
            text = "".join(e.text for e in events if isinstance(e, Token))
            assert text, "the sample request generated no text"
            n = aios_model.count_tokens("Hello, world")
            assert isinstance(n, int) and n >= 1, f"count_tokens('Hello, world') returned {n!r}"
            return
        assert sample.inputs is not None, "a TensorModel sample needs `inputs`"
        out = aios_model.run(dict(sample.inputs))
        assert isinstance(out, dict) and out, f"run() returned {out!r:.100}, not a dict of outputs"
        assert all(isinstance(k, str) for k in out), "output names must be strings"
        if sample.expected:
            import numpy as np

            for name, want in sample.expected.items():
                assert name in out, f"output '{name}' missing; got {sorted(out)}"
                np.testing.assert_allclose(np.asarray(out[name]), want, rtol=1e-3, atol=1e-3)

    def test_streams_tokens_then_one_done(
        self, aios_ready: tuple[Backend, Sample], aios_model: Any
    ) -> None:
        _, sample = aios_ready
        if not isinstance(aios_model, TextGenerator):
            pytest.skip(NO_STREAM)
        request = sample.request
        events = _stream(aios_model, request)
        assert events and isinstance(events[-1], Done), "the stream must end with one Done"
        *tokens, done = events
        assert all(isinstance(e, Token) and isinstance(e.text, str) for e in tokens), (
            f"before Done the stream must yield only Token events, got "
            f"{sorted({type(e).__name__ for e in tokens})}"
        )
        assert tokens, "no Token before Done"
        assert done.tokens_in >= 1, f"Done.tokens_in = {done.tokens_in}; the prompt has tokens"
        assert 1 <= done.tokens_out <= request.max_tokens, (
            f"Done.tokens_out = {done.tokens_out}, for {len(tokens)} Token events and "
            f"max_tokens = {request.max_tokens}"
        )
        assert len(tokens) <= done.tokens_out, (
            f"{len(tokens)} Token events but Done counts {done.tokens_out} tokens"
        )
        assert done.finish_reason in ("stop", "length"), f"finish_reason {done.finish_reason!r}"
        if done.finish_reason == "length":
            assert done.tokens_out == request.max_tokens, (
                f"finish_reason 'length' with {done.tokens_out} of {request.max_tokens} tokens"
            )
        assert done.backend_ms >= 0

    def test_cancel_stops_within_one_token(
        self, aios_ready: tuple[Backend, Sample], aios_model: Any
    ) -> None:
        _, sample = aios_ready
        if not isinstance(aios_model, TextGenerator):
            pytest.skip(NO_STREAM)
        longer = max(sample.request.max_tokens, 32)
        request = sample.request.model_copy(update={"max_tokens": longer})
        cancel = threading.Event()
        seen = after = 0
        done: Done | None = None
        for event in aios_model.stream(request, cancel):
            if isinstance(event, Token):
                seen += 1
                after += cancel.is_set()
                cancel.set()  # right after the first token
            else:
                done = event
        assert done is not None, "a cancelled stream must still end with a Done"
        assert done.finish_reason == "cancelled", (
            f"finish_reason {done.finish_reason!r} after {seen} tokens (cancelled after the "
            "first); the sample request must run longer than two tokens"
        )
        assert after <= 1, f"{after} tokens arrived after the cancel; at most one may"
        events = _stream(aios_model, sample.request.model_copy(update={"max_tokens": 4}))
        assert isinstance(events[-1], Done), "the model stopped serving after a cancel"

    def test_close_is_idempotent_and_refuses_use(self, aios_ready: tuple[Backend, Sample]) -> None:
        backend, sample = aios_ready
        model = backend.load(sample.spec, sample.path)  # its own: the shared one stays open
        model.close()
        model.close()  # a second close must not fail
        exc = _raises("using a closed model", AIOSError, lambda: _use(model, sample))
        assert str(exc), "the error of a closed model must say so"

    def test_bad_file_is_a_model_error(
        self, aios_ready: tuple[Backend, Sample], tmp_path: Path
    ) -> None:
        backend, sample = aios_ready
        if sample.path is None:
            pytest.skip("the sample loads no file (cloud backend): no bad file to give")
        suffix = sample.path.suffix
        with sample.path.open("rb") as f:
            head = f.read(min(sample.path.stat().st_size // 2, 4096))
        not_model = tmp_path / f"not-a-model{suffix}"
        not_model.write_bytes(b"this is not a model file\n" * 64)
        truncated = tmp_path / f"truncated{suffix}"
        truncated.write_bytes(head)
        (tmp_path / "folder").mkdir()
        cases: dict[str, Path | None] = {
            "no path": None,
            "a missing file": tmp_path / f"missing{suffix}",
            "a folder": tmp_path / "folder",
            "a file that is not a model": not_model,
            f"a model cut to {len(head)} bytes": truncated,
        }
        for what, path in cases.items():
            exc = _raises(
                f"load() of {what}", ModelError, lambda p=path: backend.load(sample.spec, p)
            )
            assert sample.spec.id in str(exc), f"the error for {what} must name the model: {exc}"

    def test_bad_input_is_a_clear_error(
        self, aios_ready: tuple[Backend, Sample], aios_model: Any
    ) -> None:
        _, sample = aios_ready
        assert issubclass(sample.bad_error, AIOSError)
        if isinstance(aios_model, TextGenerator):
            bad = sample.bad_generation()
            _raises("a bad request", sample.bad_error, lambda: _stream(aios_model, bad))
        else:
            for inputs in sample.bad_inputs:
                _raises(
                    f"run() of bad inputs {sorted(inputs)}",
                    sample.bad_error,
                    lambda i=inputs: aios_model.run(dict(i)),
                )
        _use(aios_model, sample)  # and the model still serves good calls

    def test_footprint_estimate(self, aios_ready: tuple[Backend, Sample], tmp_path: Path) -> None:
        backend, sample = aios_ready
        if sample.path is None:
            pytest.skip("the sample loads no file (cloud backend): it takes no device memory")
        mb = backend.footprint_mb(sample.spec, sample.path)
        if mb is None:
            pytest.skip(
                f"footprint_mb returns None: the config's memory_mb "
                f"({sample.spec.memory_mb} MB) is used"
            )
        assert isinstance(mb, int | float) and math.isfinite(mb) and mb > 0, (
            f"footprint_mb returned {mb!r}; it must be a positive number of MB, or None"
        )
        missing = tmp_path / f"missing{sample.path.suffix}"
        try:
            backend.footprint_mb(sample.spec, missing)
        except ModelError:
            pass
        except Exception as exc:
            pytest.fail(
                f"footprint_mb of a missing file raised {type(exc).__name__}: {exc}; the "
                "contract is a ModelError (or None)",
                pytrace=False,
            )

    def test_footprint_against_measured_rss(self, aios_ready: tuple[Backend, Sample]) -> None:
        _, sample = aios_ready
        pytest.skip(sample.rss_note)
