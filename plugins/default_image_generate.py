"""Built-in `image-generate` skill: text to image through the OEM's cloud images endpoint.

No image-generation model runs on these devices, so the skill needs a cloud model with the
`image-generation` capability (an OpenAI-compatible ``/images/generations`` endpoint). Without
one it fails with a clear, typed error rather than pretending. The prompt is the user's text
(``personal``), so routing policy applies as to any text request: local-only mode, offline or a
spent cloud budget also make it unavailable, and the error says which.

Editing a user's photo is deliberately not offered: it would send the photo to the cloud, and
photos never leave the device.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aios.context import SkillContext
from aios.errors import NoModelAvailableError
from aios.hookspecs import hookimpl
from aios.skill import Skill
from aios.types import Capability, DataClass, Sensitivity

NOT_CONFIGURED = (
    "image generation is not available on this device: no on-device image-generation model, "
    "and the OEM config names no cloud images endpoint"
)


class GenerateImageInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=4000, description="What the image should show.")
    size: Literal["256x256", "512x512", "1024x1024"] = Field(
        default="512x512", description="Image size in pixels."
    )


class GeneratedImage(BaseModel):
    b64_png: str | None = Field(default=None, description="The image, base64-encoded.")
    url: str | None = Field(default=None, description="Where the endpoint put the image.")


class GenerateImageOutput(BaseModel):
    images: list[GeneratedImage]
    model: str = Field(description="The cloud model that made them.")
    endpoint: str = Field(description="The cloud endpoint it was served by.")


class GenerateImage(Skill):
    name = "image-generate"
    description = (
        "Generate an image from a text prompt with the OEM's cloud images endpoint "
        "(not available on device)."
    )
    Input = GenerateImageInput
    Output = GenerateImageOutput
    capabilities = frozenset({Capability.image_generation})
    sensitivity = Sensitivity.personal
    data_classes = frozenset({DataClass.text})
    text_field = "prompt"

    def run(self, inp: Any, ctx: SkillContext) -> GenerateImageOutput:
        model = ctx.model
        assert model is not None  # the orchestrator chose one, or fallback() ran instead
        result = ctx.generate_images(inp.prompt, size=inp.size)
        return GenerateImageOutput(
            images=[GeneratedImage(**img) for img in result.images],
            model=model.id,
            endpoint=model.endpoint or "",
        )

    def fallback(self, inp: Any, ctx: SkillContext) -> GenerateImageOutput | None:
        # No model was usable. Say why plainly: nothing configured, or the cloud ruled out now.
        reasons = ctx.record.reasons
        rejected = [f"{d.choice}: {d.reason}" for d in reasons if d.stage == "model"]
        if not rejected:
            raise NoModelAvailableError(NOT_CONFIGURED)
        policy = [d.reason for d in reasons if d.stage == "tier" and d.choice == "device"]
        raise NoModelAvailableError(
            "image generation is not available right now: it needs the cloud ("
            + "; ".join(policy + rejected)
            + ")"
        )


@hookimpl
def register_skills(register: Any) -> None:
    register(GenerateImage)
