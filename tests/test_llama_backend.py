"""The llama.cpp CPU backend on the real GGUF models."""

from __future__ import annotations

import threading

import pytest

from aios import Done, GenerationRequest, Orchestrator, TextGenerator, Token

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def gemma(reference: Orchestrator) -> TextGenerator:
    from aios.selection import Choice

    spec = reference.config.model("gemma3-270m")
    handle = reference.loaded_model(Choice(model=spec, backend="llama_cpp")).handle
    assert isinstance(handle, TextGenerator)
    return handle


def test_streams_tokens_then_done(gemma: TextGenerator) -> None:
    events = list(gemma.stream(GenerationRequest(prompt="The capital of France is", max_tokens=8)))
    assert isinstance(events[-1], Done) and all(isinstance(e, Token) for e in events[:-1])
    done = events[-1]
    assert done.tokens_out == 8 and done.finish_reason == "length" and done.tokens_in >= 5


def test_cancel_stops_within_one_token(gemma: TextGenerator) -> None:
    cancel = threading.Event()
    seen = 0
    done = None
    for event in gemma.stream(GenerationRequest(prompt="Once upon a time", max_tokens=200), cancel):
        if isinstance(event, Token):
            seen += 1
            if seen == 3:
                cancel.set()
        else:
            done = event
    assert done is not None and done.finish_reason == "cancelled"
    assert seen == 3 and done.tokens_out <= 5


def test_native_log_never_reaches_the_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    orch = Orchestrator.from_file(None, strict=True)
    try:
        orch.invoke("generate", {"prompt": "Hello", "max_tokens": 4})
    finally:
        orch.close()
    captured = capfd.readouterr()
    assert "llama" not in captured.err.lower() and "ggml" not in captured.err.lower()
    assert "load_tensors" not in captured.out


def test_chat_models_use_their_own_template(reference: Orchestrator) -> None:
    result = reference.invoke(
        "generate",
        {"prompt": "Say hello in one word.", "max_tokens": 8},
        model="smollm2-135m-instruct",
    )
    assert result.output.text.strip() and result.record.tokens_out > 0


def test_prompt_longer_than_the_context_is_a_clear_error(reference: Orchestrator) -> None:
    from aios import GenerationError

    with pytest.raises(GenerationError, match="does not fit the context window of 2048 tokens"):
        reference.invoke("generate", {"prompt": "word " * 3000, "max_tokens": 4})


def test_overhead_bench_dispatch_path_runs(
    reference: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bench calls orchestrator internals; keep it in step with them.
    import importlib.util

    from .conftest import REPO

    monkeypatch.syspath_prepend(str(REPO / "bench"))  # as when the script runs: its helpers
    spec = importlib.util.spec_from_file_location("overhead_bench", REPO / "bench" / "overhead.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    times = bench.dispatch_us(reference, 5)
    assert len(times) == 5 and all(t > 0 for t in times)
