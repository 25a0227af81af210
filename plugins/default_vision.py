"""Built-in `image` skill (tag and classify a photo on device) and the vision model builders.

Photos are private data: the skill is ``Sensitivity.private`` with data class ``photos``, so
routing never sends one to the cloud, whatever the user's or OEM's routing mode. The model runs
through ``ctx.run_tensor`` on whatever backend the OEM config lists for it (QNN's NPU first on
Qualcomm devices, onnxruntime's CPU otherwise); see ``aios.vision`` for the model contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aios.context import SkillContext
from aios.errors import InvalidInputError
from aios.hookspecs import hookimpl
from aios.plugins.vision_build import BUILDERS
from aios.skill import Skill
from aios.types import Capability, DataClass, Sensitivity
from aios.vision import INPUT_NAME, OUTPUT_NAME, preprocess
from aios.vision.tagging import top_k

# Below this softmax probability a label is more guess than tag (EfficientNet-Lite0 spreads
# probability over sibling classes: tabby / tiger cat / Egyptian cat).
TAG_MIN_SCORE = 0.1


class ImageInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(
        min_length=1,
        max_length=4096,
        description="Path of the photo on the device (JPEG, PNG, WebP, ... anything Pillow reads).",
    )
    top_k: int = Field(default=5, ge=1, le=20, description="How many labels to return.")


class ImageLabel(BaseModel):
    label: str = Field(description="English class name (ImageNet-1k).")
    label_zh: str = Field(description="Chinese class name.")
    score: float = Field(ge=0, le=1, description="Softmax probability of the class.")
    index: int = Field(ge=0, description="ImageNet-1k class index.")


class ImageOutput(BaseModel):
    file: str = Field(description="The photo, as given.")
    labels: list[ImageLabel] = Field(description="Most likely classes first.")
    width: int = Field(description="Width of the photo in pixels (EXIF orientation applied).")
    height: int = Field(description="Height of the photo in pixels (EXIF orientation applied).")
    model: str = Field(description="The model that labelled it.")
    tags: list[str] = Field(
        description="Labels worth acting on: the top one, and the rest scoring at least "
        f"{TAG_MIN_SCORE}."
    )

    def agent_text(self) -> str:
        return ", ".join(self.tags)


class TagImage(Skill):
    name = "image"
    description = (
        "Tag and classify a photo on device: the top ImageNet labels with scores, in English "
        "and Chinese. Photos never leave the device."
    )
    Input = ImageInput
    Output = ImageOutput
    capabilities = frozenset({Capability.vision})
    sensitivity = Sensitivity.private
    data_classes = frozenset({DataClass.photos})
    file_field = "file"  # `aios run image --file photo.jpg`

    def run(self, inp: Any, ctx: SkillContext) -> ImageOutput:
        path = Path(inp.file).expanduser()
        try:  # read before the model loads: a bad file fails fast
            image = preprocess.read_image(path)
        except ValueError as exc:
            raise InvalidInputError(self.name, [f"file '{inp.file}': {exc}"]) from None
        width, height = image.info.get("original_size", image.size)
        x = preprocess.batch([image])
        logits = ctx.run_tensor({INPUT_NAME: x})[OUTPUT_NAME]
        tags = top_k(logits[0], inp.top_k)
        return ImageOutput(
            file=inp.file,
            labels=[ImageLabel(**t) for t in tags],
            width=int(width),
            height=int(height),
            model=ctx.model.id if ctx.model else "?",
            tags=[t["label"] for i, t in enumerate(tags) if i == 0 or t["score"] >= TAG_MIN_SCORE],
        )


@hookimpl
def register_skills(register: Any) -> None:
    register(TagImage)


@hookimpl
def register_model_builders(register: Any) -> None:
    for builder in BUILDERS:
        register(builder)
