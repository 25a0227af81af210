"""Imports fine, then raises inside its hook after registering one valid skill."""

from typing import Any

from pydantic import BaseModel

from aios import Skill, hookimpl


class Half(BaseModel):
    text: str


class HalfRegistered(Skill):
    name = "half_registered"
    description = "Registered just before the plugin raises; must be rolled back."
    Input = Half
    Output = Half

    def run(self, inp: Any, ctx: Any) -> Half:
        return Half(text=inp.text)


@hookimpl
def register_skills(register: Any) -> None:
    register(HalfRegistered)
    raise RuntimeError("plugin bug while registering")
