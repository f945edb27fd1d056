"""What a call cost, from a price table kept as data.

The table ships in ``agent/data/prices.json`` (USD per million tokens); ``RESEARCH_PRICES`` names a JSON
file of the same shape whose entries override or extend it. A model missing from both still has its
tokens counted; its cost is ``None`` (unknown), never a guess.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from agent.config import env
from agent.errors import UsageError


@lru_cache(maxsize=4)
def _table(override_path: str | None) -> dict[str, dict[str, dict[str, float]]]:
    table: dict[str, Any] = json.loads(resources.files("agent").joinpath("data/prices.json").read_text())
    table.pop("_comment", None)
    if override_path:
        try:
            extra = json.loads(open(override_path, encoding="utf-8").read())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the price file {override_path}: {exc}",
                             hint="fix RESEARCH_PRICES or unset it") from exc
        for provider, models in extra.items():
            if isinstance(models, dict):
                table.setdefault(provider, {}).update(models)
    return table


def price_of(provider: str, model: str) -> dict[str, float] | None:
    """The price entry of a model: exact name, else the longest listed prefix (dated snapshots), else ``*``."""
    models = _table(env("RESEARCH_PRICES")).get(provider, {})
    if model in models:
        return models[model]
    prefixes = [name for name in models if name != "*" and model.startswith(name)]
    if prefixes:
        return models[max(prefixes, key=len)]
    return models.get("*")


def cost_of(provider: str, model: str, usage: Any) -> float | None:
    """USD for one call's usage, or ``None`` when the model has no price."""
    price = price_of(provider, model)
    if price is None:
        return None
    cached = min(getattr(usage, "cached_tokens", 0) or 0, usage.input_tokens or 0)
    fresh = (usage.input_tokens or 0) - cached
    cost = (
        fresh * price.get("input", 0.0)
        + cached * price.get("cached_input", price.get("input", 0.0))
        + (usage.output_tokens or 0) * price.get("output", 0.0)
    ) / 1_000_000
    return round(cost, 8)
