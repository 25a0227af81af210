"""Prompt prefill in slices, so a request cancelled while its prompt is read stops soon.

llama-cpp-python reads the whole prompt in one ``eval`` inside ``create_completion``: on a
2-core phone-class CPU a 1,000-token prompt is several seconds in which a cancelled request
(the app went away, the service is shutting down) still holds the model. Here the prompt is
fed in slices of ``PREFILL_SLICE`` tokens with a cancel check between them, all but its last
token; ``create_completion`` then finds that prefix in the KV cache (its own prefix reuse) and
only decodes the last token before sampling.

Completion prompts are tokenized here once and handed to ``create_completion`` as ids. Chat
prompts are rendered here only to predict the ids llama-cpp-python's chat handler will feed
the model; were that prediction off, ``generate`` would re-read the prompt from the first
differing token, slower but still correct. Tests check both against what was evaluated.
"""

from __future__ import annotations

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
    """Renders chat messages to token ids the way the model's own GGUF chat template does.

    Only for models whose chat handler is the template from their metadata (what
    llama-cpp-python picks when no named format matched); for others ``tokens`` is None and
    prefill stays in one piece.
    """

    def __init__(self, llm: Any) -> None:
        self._formatter: Any = None
        template = llm.metadata.get("tokenizer.chat_template")
        if llm.chat_handler is None and llm.chat_format == "chat_template.default" and template:
            from llama_cpp import llama_chat_format

            model = llm._model
            eos_id, bos_id = llm.token_eos(), llm.token_bos()
            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=model.token_get_text(eos_id) if eos_id != -1 else "",
                bos_token=model.token_get_text(bos_id) if bos_id != -1 else "",
                stop_token_ids=[eos_id],
            )

    def tokens(self, llm: Any, messages: Sequence[dict[str, str]]) -> list[int] | None:
        if self._formatter is None:
            return None
        result = self._formatter(messages=list(messages))
        return list(
            llm.tokenize(
                result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
            )
        )


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
