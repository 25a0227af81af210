"""Built-in `summarize` skill: English and Chinese, map-reduce for long documents, streamed.

What to ask (labels, instructions per language and length) lives here; how to ask a given model
family lives in the OEM config's prompt formats. Output is cleaned as it streams: only complete,
cleaned sentences are emitted, so the streamed text and the final summary agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aios.context import SkillContext
from aios.errors import GenerationError
from aios.hookspecs import hookimpl
from aios.plugins import summarize_text as st
from aios.prompt import Prompt, render
from aios.skill import Skill, SkillStream
from aios.streams import drain
from aios.types import Capability, DataClass, Sensitivity

Length = Literal["short", "medium", "long"]


@dataclass(frozen=True)
class Ask:
    instruction: str
    input_label: str
    answer_label: str


# Labels a base model continues well ("One-sentence summary:") double as the instruction for
# chat models. Asking a base model for "N sentences" makes it answer with a short list of
# faithful points, which the cleaner turns back into prose.
ASKS: dict[tuple[str, str], Ask] = {
    ("en", "short"): Ask(
        "Summarize the article in one sentence.", "Article", "One-sentence summary"
    ),
    ("en", "medium"): Ask(
        "Summarize the article in two or three sentences.", "Article", "Summary in 2 sentences"
    ),
    ("en", "long"): Ask(
        "Summarize the article in four or five sentences.", "Article", "Summary in 4 sentences"
    ),
    ("zh", "short"): Ask("用一句话总结下面的文章。", "文章", "一句话总结"),
    ("zh", "medium"): Ask("用两三句话总结下面的文章。", "文章", "两句话总结"),
    ("zh", "long"): Ask("用四五句话总结下面的文章。", "文章", "四句话总结"),
}
MAX_SENTENCES: dict[str, int] = {"short": 1, "medium": 3, "long": 5}
MAX_TOKENS: dict[str, int] = {"short": 64, "medium": 128, "long": 256}
EXTRACTIVE_SENTENCES: dict[str, int] = {"short": 1, "medium": 3, "long": 6}
# A summary longer than this share of its input is not a summary; extra sentences are cut.
MAX_RATIO = 0.6
MAX_REDUCE_ROUNDS = 4
BLANK_LINE = re.compile(r"\n\s*\n")
TERMINALS = (".", "!", "?", "。", "！", "？", "”", "」", '"')


class SummarizeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2_000_000, description="The document to summarize.")
    length: Length = Field(default="medium", description="Summary length: short, medium, long.")
    language: Literal["auto", "en", "zh"] = Field(
        default="auto", description="Language of the summary; auto follows the document."
    )


class SummarizeOutput(BaseModel):
    summary: str = Field(description="The summary, in the document's language.")
    language: Literal["en", "zh"]
    method: Literal["abstractive", "extractive"]
    chunks: int = Field(description="Pieces the document was split into (1 = single pass).")
    input_chars: int
    summary_chars: int


def _cap_sentences(text: str, cap: int, most: int = 1_000) -> str:
    """Keep at most ``most`` whole sentences within ``cap`` characters (always at least one)."""
    if len(text) <= cap and most >= 1_000:
        return text
    kept: list[str] = []
    total = 0
    for sent in st.split_sentences(text):
        if kept and (total + len(sent) > cap or len(kept) >= most):
            break
        kept.append(sent)
        total += len(sent)
    joiner = "" if st.detect_language(text) == "zh" else " "
    return joiner.join(kept)


class Summarize(Skill):
    name = "summarize"
    description = (
        "Summarize a document on device (English or Chinese); long documents are summarized "
        "piece by piece and the pieces' summaries are summarized again."
    )
    Input = SummarizeInput
    Output = SummarizeOutput
    capabilities = frozenset({Capability.text_generation})
    sensitivity = Sensitivity.personal
    data_classes = frozenset({DataClass.documents})
    text_field = "text"

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    def _language(inp: SummarizeInput) -> str:
        return st.detect_language(inp.text) if inp.language == "auto" else inp.language

    def _prompt(self, text: str, lang: str, length: str) -> Prompt:
        ask = ASKS[(lang, length)]
        return Prompt(
            input=text.strip(),
            instruction=ask.instruction,
            input_label=ask.input_label,
            answer_label=ask.answer_label,
        )

    def _budget(self, ctx: SkillContext, lang: str, length: str) -> int:
        """Tokens of document that fit one call beside the prompt and the answer."""
        empty = render(self._prompt("", lang, length), ctx.prompt_format)
        scaffold = empty.text or " ".join(m["content"] for m in empty.messages or ())
        overhead = ctx.count_tokens(scaffold) + 16  # + chat template tokens, BOS
        return ctx.context_length - MAX_TOKENS[length] - overhead

    def _complete(
        self, ctx: SkillContext, text: str, lang: str, length: str, cap: int
    ) -> SkillStream:
        """One model call; streams cleaned sentences and returns the cleaned summary."""
        ask = ASKS[(lang, length)]
        labels = (ask.answer_label, ask.input_label)
        most = MAX_SENTENCES[length]
        emitted = ""
        memo: dict[str, str] = {}

        def clean(raw: str) -> str:
            # The stream loop and the stop check both look at the same text after every token:
            # clean it once per token, not three times.
            if raw not in memo:
                memo.clear()
                memo[raw] = st.clean_output(raw, prompt_labels=labels, source=text)
            return memo[raw]

        def cleaned(raw: str, final: bool) -> str:
            out = clean(raw)
            if not final and out and not raw.rstrip().endswith(TERMINALS):
                # The last sentence may still grow: hold it back until it is complete.
                sents = st.split_sentences(out)
                out = out[: len(out) - len(sents[-1])].rstrip() if len(sents) > 1 else ""
            return _cap_sentences(out, cap, most)

        def finished(raw: str) -> bool:
            # A blank line ends the answer, unless the answer is a list whose items the model
            # separates with blank lines.
            blocks = BLANK_LINE.split(raw.lstrip())
            if len(blocks) > 1:
                last = blocks[-1].lstrip()
                if not st.starts_list_item(blocks[0]):
                    return True
                if len(last) >= 3 and not st.starts_list_item(last):
                    return True
            out = cleaned(raw, final=False)
            if len(out) >= cap or len(st.split_sentences(out)) >= most:
                return True
            # Raw text growing far past what survives cleaning means the model is looping.
            return len(raw.strip()) > 2 * len(clean(raw)) + 120

        gen = ctx.stream(
            self._prompt(text, lang, length),
            max_tokens=MAX_TOKENS[length],
            until=finished,
        )
        raw = ""
        while True:
            try:
                raw += next(gen)
            except StopIteration:
                break
            now = cleaned(raw, final=False)
            if now.startswith(emitted) and len(now) > len(emitted):
                yield now[len(emitted) :]
                emitted = now
        final = cleaned(raw, final=True)
        if final.startswith(emitted):
            if len(final) > len(emitted):
                yield final[len(emitted) :]
            return final
        return emitted or final

    # -- the skill ------------------------------------------------------------------------
    def stream(self, inp: Any, ctx: SkillContext) -> SkillStream:
        lang = self._language(inp)
        text = inp.text.strip()
        cap = max(80, int(len(text) * MAX_RATIO))
        budget = self._budget(ctx, lang, inp.length)
        if budget < 64:
            raise GenerationError(
                f"model '{ctx.model.id if ctx.model else '?'}' has a context of "
                f"{ctx.context_length} tokens: too small to summarize with"
            )
        pieces = 1
        rounds = 0
        while ctx.count_tokens(text) > budget:
            rounds += 1
            chunks = st.chunk_text(text, budget, ctx.count_tokens)
            if rounds == 1:
                pieces = len(chunks)
                ctx.note("skill", f"map-reduce: {len(chunks)} chunks of <= {budget} tokens")
            if rounds > MAX_REDUCE_ROUNDS:
                text = chunks[0]  # bounded work: a pathological input must still finish
                break
            partials = []
            for chunk in chunks:
                ctx.check_cancelled()
                part = drain(self._complete(ctx, chunk, lang, "medium", cap=10_000))
                partials.append(
                    part or st.extractive_summary(chunk, max_sentences=3, language=lang)
                )
            text = ("" if lang == "zh" else "\n").join(partials)
        summary = yield from self._complete(ctx, text, lang, inp.length, cap)
        method: Literal["abstractive", "extractive"] = "abstractive"
        if not summary:
            ctx.note("skill", "the model gave no usable summary; extractive summary used")
            summary = self._extractive(text, lang, inp.length)
            yield summary
            method = "extractive"
        return self._output(inp, lang, summary, method, pieces)

    def fallback(self, inp: Any, ctx: SkillContext) -> SummarizeOutput:
        lang = self._language(inp)
        ctx.use_fallback(
            "extractive", "no text-generation model fits this device; extractive summary (no LLM)"
        )
        summary = self._extractive(inp.text, lang, inp.length)
        return self._output(inp, lang, summary, "extractive", 1)

    @staticmethod
    def _extractive(text: str, lang: str, length: str) -> str:
        summary = st.extractive_summary(
            text, max_sentences=EXTRACTIVE_SENTENCES[length], language=lang
        )
        return _cap_sentences(summary, max(80, int(len(text) * MAX_RATIO)))

    @staticmethod
    def _output(
        inp: SummarizeInput, lang: str, summary: str, method: Any, chunks: int
    ) -> SummarizeOutput:
        return SummarizeOutput(
            summary=summary,
            language=lang,  # type: ignore[arg-type]
            method=method,
            chunks=chunks,
            input_chars=len(inp.text),
            summary_chars=len(summary),
        )


@hookimpl
def register_skills(register: Any) -> None:
    register(Summarize)
