"""Prompt prefill in slices, so a request cancelled while its prompt is read stops soon.

llama-cpp-python reads the whole prompt in one ``eval`` inside ``create_completion``: on a
2-core phone-class CPU a 1,000-token prompt is several seconds in which a cancelled request
(the app went away, the service is shutting down) still holds the model. Here the prompt is
fed in slices of ``PREFILL_SLICE`` tokens with a cancel check between them, all but its last
token; ``create_completion`` then finds that prefix in the KV cache (its own prefix reuse) and
only decodes the last token before sampling.

Completion prompts are tokenized here once and handed to ``create_completion`` as ids. Chat
prompts are rendered here, with the chat handler's own formatter, only to predict the ids it
will feed the model; were that prediction off, ``generate`` would re-read the prompt from the
first differing token, slower but still correct. Tests check both against what was evaluated.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from aios.backend import CancelSignal

# Measured with bench/prefill_slices.py on gemma3-270m, 2 cores: slices of 128 tokens read a
# prompt within a few percent of one 512-token batch and bound one slice to well under a second.
PREFILL_SLICE = 128


def completion_tokens(llm: Any, prompt: str) -> list[int]:
    """The ids ``create_completion(prompt=<str>)`` would evaluate (no suffix, no infill), to
    pass it as ``prompt=<ids>``: with ids it adds no BOS/EOS of its own."""
    model = llm._model
    bos: list[int] = []
    if model.add_bos_token():
        cls_id = model.token_cls()
        first = cls_id if cls_id != -1 else llm.token_bos()
        if first != -1:
            bos = [first]
    eos: list[int] = []
    sep_id = model.token_sep()
    if model.add_eos_token() or sep_id != -1:
        eos = [sep_id if sep_id != -1 else llm.token_eos()]
    body = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True) if prompt else []
    return bos + body + eos


class ChatPrompts:
    """Renders chat messages to the token ids llama-cpp-python's chat handler will evaluate.

    The formatter is the very one inside that handler (a GGUF template from the metadata or a
    named format such as "chatml", or "llama-2", the fallback for models without a template),
    read from the handler's closure: llama-cpp-python keeps no name-to-formatter map. Where
    there is none to read (a custom ``chat_handler``, a handler that is no formatter wrapper,
    e.g. a multimodal one) ``tokens`` is None and prefill stays in one piece.
    """

    def __init__(self, llm: Any) -> None:
        self._formatter = _chat_formatter(llm)

    def tokens(self, llm: Any, messages: Sequence[dict[str, str]]) -> list[int] | None:
        if self._formatter is None:
            return None
        # The same arguments the handler passes for a plain chat request.
        result = self._formatter(
            messages=list(messages),
            functions=None,
            function_call=None,
            tools=None,
            tool_choice=None,
        )
        return list(
            llm.tokenize(
                result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
            )
        )


def _chat_formatter(llm: Any) -> Any:
    if llm.chat_handler is not None or not llm.chat_format:
        return None
    from llama_cpp import llama_chat_format

    # The lookup create_chat_completion itself makes.
    handler = llm._chat_handlers.get(llm.chat_format)
    if handler is None:
        try:
            handler = llama_chat_format.get_chat_completion_handler(llm.chat_format)
        except ValueError:  # an unknown name: create_chat_completion will report it
            return None
    try:
        formatter = inspect.getclosurevars(handler).nonlocals.get("chat_formatter")
    except TypeError:  # not a Python function (a handler object with __call__)
        return None
    return formatter if callable(formatter) else None


def prefill(llm: Any, tokens: Sequence[int], cancel: CancelSignal | None) -> bool:
    """Evaluate all but the last of ``tokens`` in slices; False if ``cancel`` came first.

    Tokens already in the KV cache (a shared prefix with the previous request) are kept.
    """
    target = list(tokens[:-1])  # generate() decodes the last one itself for fresh logits
    if cancel is None or getattr(llm, "_is_recurrent", False) or getattr(llm, "_is_hybrid", False):
        return True  # nothing to stop for; recurrent state cannot be cut back to a prefix
    cached = llm._input_ids
    keep = 0
    for a, b in zip(cached, target, strict=False):
        if a != b:
            break
        keep += 1
    if len(target) - keep <= PREFILL_SLICE:
        return not cancel.is_set()  # one slice either way: leave it to generate()
    llm.n_tokens = keep  # eval() drops the KV entries past n_tokens before appending
    for start in range(keep, len(target), PREFILL_SLICE):
        if cancel.is_set():
            return False
        llm.eval(target[start : start + PREFILL_SLICE])
    return not cancel.is_set()
