"""The llama.cpp CPU backend on the real GGUF models."""

from __future__ import annotations

import threading
import time

import pytest

from aios import Done, GenerationRequest, Orchestrator, TextGenerator, Token

pytestmark = pytest.mark.model


def _loaded(orch: Orchestrator, model_id: str) -> TextGenerator:
    from aios.selection import Choice

    spec = orch.config.model(model_id)
    handle = orch.loaded_model(Choice(model=spec, backend="llama_cpp")).handle
    assert isinstance(handle, TextGenerator)
    return handle


@pytest.fixture(scope="module")
def gemma(reference: Orchestrator) -> TextGenerator:
    return _loaded(reference, "gemma3-270m")


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


@pytest.fixture(scope="module")
def smollm(reference: Orchestrator) -> TextGenerator:
    return _loaded(reference, "smollm2-135m-instruct")


LONG_TEXT = " ".join(
    f"On day {i} the council reviewed the budget for parks, roads and schools." for i in range(90)
)


def _evaluated(model: TextGenerator) -> list[int]:
    return list(model._llm._input_ids)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["completion", "chat-template", "chat-named"])
def test_predicted_prompt_tokens_are_what_the_model_reads(
    gemma: TextGenerator, smollm: TextGenerator, kind: str
) -> None:
    # Sliced prefill relies on this prediction for its speed (not its correctness): a wrong
    # one would have llama.cpp read the prompt a second time.
    messages = (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": LONG_TEXT},
    )
    if kind == "completion":
        model, request = gemma, GenerationRequest(prompt=LONG_TEXT, max_tokens=1)
    elif kind == "chat-template":  # SmolLM2 chats with the template in its GGUF
        model, request = smollm, GenerationRequest(messages=messages, max_tokens=1)
        assert model._llm.chat_format == "chat_template.default"  # type: ignore[attr-defined]
    else:  # the base Gemma has no template: llama-cpp-python falls back to a named format
        model, request = gemma, GenerationRequest(messages=messages, max_tokens=1)
        assert model._llm.chat_format == "llama-2"  # type: ignore[attr-defined]
    predicted = model._prompt_tokens(model._llm, request)  # type: ignore[attr-defined]
    assert predicted is not None and len(predicted) > 500
    events = list(model.stream(request, threading.Event()))
    assert events[-1].tokens_in == len(predicted)  # type: ignore[union-attr]
    assert _evaluated(model)[: len(predicted)] == predicted


def test_cancel_during_prefill_stops_between_slices(gemma: TextGenerator) -> None:
    from aios.backends.llama_cpp_prefill import PREFILL_SLICE

    prompt = LONG_TEXT + " To sum up,"
    request = GenerationRequest(prompt=prompt, max_tokens=4)
    n_prompt = len(gemma._prompt_tokens(gemma._llm, request))  # type: ignore[attr-defined]
    gemma._llm.reset()  # type: ignore[attr-defined]  # nothing of it cached
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    t0 = time.perf_counter()
    timer.start()
    events = list(gemma.stream(request, cancel))
    waited = time.perf_counter() - t0
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "cancelled"
    assert done.tokens_out == 0 and len(events) == 1 and done.tokens_in == n_prompt
    evaluated = len(_evaluated(gemma))
    assert evaluated < n_prompt - PREFILL_SLICE  # it stopped reading the prompt part-way
    print(
        f"\ncancelled 0.3 s into a {n_prompt}-token prefill: returned after {waited:.2f} s "
        f"with {evaluated} tokens read"
    )

    # The next request on the same prompt picks up from what was read and completes.
    events = list(gemma.stream(request, threading.Event()))
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "length" and done.tokens_out == 4


def test_a_request_already_cancelled_reads_no_prompt(gemma: TextGenerator) -> None:
    gemma._llm.reset()  # type: ignore[attr-defined]
    cancel = threading.Event()
    cancel.set()
    events = list(gemma.stream(GenerationRequest(prompt=LONG_TEXT, max_tokens=4), cancel))
    assert len(events) == 1 and events[0].finish_reason == "cancelled"  # type: ignore[union-attr]
    assert _evaluated(gemma) == []


def test_close_does_not_hang_on_a_stream_nobody_finished() -> None:
    orch = Orchestrator.from_file(None, strict=True)
    events = orch.stream("generate", {"prompt": "Write a long story.", "max_tokens": 200})
    assert next(events).delta is not None  # a call now holds the model's slot
    t0 = time.perf_counter()
    closer = threading.Thread(target=orch.close, kwargs={"timeout_s": 1.0}, daemon=True)
    closer.start()
    closer.join(30)
    assert not closer.is_alive(), "close() hung on an unfinished stream"
    assert time.perf_counter() - t0 < 10
    # The model was left open, not freed under the stream: reading on is still safe.
    assert next(events).delta is not None
    events.close()


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


def test_chat_prompt_longer_than_the_context_is_a_clear_error(smollm: TextGenerator) -> None:
    from aios.errors import ContextLengthError

    request = GenerationRequest(messages=({"role": "user", "content": "word " * 9000},))
    with pytest.raises(ContextLengthError, match="does not fit the context window"):
        list(smollm.stream(request))


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
