"""Built-in `calories` skill: which recognised labels are food, and their energy per serving.

A table lookup, no model: the ImageNet food classes (vegetables, fruit, seafood, dishes, drinks)
with approximate kcal per 100 g and a typical serving (``aios/data/food_energy.json``, USDA
FoodData Central ballpark figures). Labels that are not food are listed as such, so an agent can
tell "no food in this photo" apart from a failure.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aios.context import SkillContext
from aios.errors import InvalidInputError
from aios.hookspecs import hookimpl
from aios.skill import Skill
from aios.types import Sensitivity
from aios.vision import labels


class CaloriesInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[str] = Field(
        min_length=1,
        max_length=20,
        description="Image labels (ImageNet English names), e.g. the `image` skill's tags.",
    )


class Food(BaseModel):
    label: str
    label_zh: str
    kind: Literal["ingredient", "dish", "drink"]
    kcal_per_100g: float
    serving_g: float
    kcal_per_serving: float


class CaloriesOutput(BaseModel):
    foods: list[Food] = Field(description="The labels that are food, in the order given.")
    not_food: list[str] = Field(description="Labels that are not food (or not in the table).")
    kcal_total: float = Field(description="Sum over the foods of one typical serving each.")
    source: str

    def agent_text(self) -> str:
        return ", ".join(f.label for f in self.foods)


@cache
def _table() -> tuple[str, dict[str, tuple[int, dict[str, Any]]]]:
    data = json.loads(resources.files("aios.data").joinpath("food_energy.json").read_text())
    english = labels.english()
    by_name = {english[int(i)].lower(): (int(i), row) for i, row in data["foods"].items()}
    return data["source"], by_name


class Calories(Skill):
    name = "calories"
    description = (
        "Estimate the energy of recognised foods: which labels are food, kcal per 100 g and "
        "per typical serving (a lookup table, no model)."
    )
    Input = CaloriesInput
    Output = CaloriesOutput
    sensitivity = Sensitivity.personal

    def run(self, inp: Any, ctx: SkillContext) -> CaloriesOutput:
        source, table = _table()
        zh = labels.chinese()
        foods, not_food = [], []
        for name in dict.fromkeys(inp.labels):
            hit = table.get(name.strip().lower())
            if hit is None:
                not_food.append(name)
                continue
            index, row = hit
            per_serving = row["kcal_per_100g"] * row["serving_g"] / 100
            foods.append(
                Food(
                    label=name.strip(),
                    label_zh=zh[index],
                    kind=row["kind"],
                    kcal_per_100g=row["kcal_per_100g"],
                    serving_g=row["serving_g"],
                    kcal_per_serving=round(per_serving, 1),
                )
            )
        if not foods:
            raise InvalidInputError(
                self.name, [f"no food among the labels: {', '.join(inp.labels)}"]
            )
        total = round(sum(f.kcal_per_serving for f in foods), 1)
        return CaloriesOutput(foods=foods, not_food=not_food, kcal_total=total, source=source)


@hookimpl
def register_skills(register: Any) -> None:
    register(Calories)
