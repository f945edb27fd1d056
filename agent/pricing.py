"""What a call cost, from a price table kept as data.

The table ships in ``agent/data/prices.json`` (USD per million tokens); ``RESEARCH_PRICES`` names a JSON
file of the same shape whose entries override or extend it. A model missing from both still has its
tokens counted; its cost is ``None`` (unknown), never a guess.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from agent.config import env
from agent.errors import UsageError

# A dated or numbered snapshot at the end of a model name: -2024-08-06, -20250929, -001, @20250514.
_SNAPSHOT = re.compile(r"(?:[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{3}))$")


@lru_cache(maxsize=4)
def _table(override_path: str | None) -> dict[str, dict[str, dict[str, float]]]:
    table: dict[str, Any] = json.loads(resources.files("agent").joinpath("data/prices.json").read_text())
    table.pop("_comment", None)
    table.setdefault("_batch", {}).pop("_comment", None)
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


#: Prices given by a model's own settings (``[models.NAME]`` in research.toml); they win over the table.
_registered: dict[tuple[str, str], dict[str, float]] = {}


def register(provider: str, model: str, prices: dict[str, float]) -> None:
    """Price ``provider:model`` as its settings say, for this process."""
    _registered[(provider, model)] = dict(prices)


def price_of(provider: str, model: str) -> dict[str, float] | None:
    """The price entry of a model: exact name, else its undated name, else ``*``, else ``None``.

    Only a snapshot suffix is stripped (``gpt-4o-2024-08-06``, ``claude-sonnet-4-5-20250929``,
    ``gemini-2.0-flash-001``): a bare prefix would price ``o3-pro`` as ``o3`` or ``gpt-5-pro`` as
    ``gpt-5``, a guess ten times off, where an unknown cost is the honest answer.
    """
    if (provider, model) in _registered:
        return _registered[(provider, model)]
    models = _table(env("RESEARCH_PRICES")).get(provider, {})
    if model in models:
        return models[model]
    undated = _SNAPSHOT.sub("", model)
    if undated != model and undated in models:
        return models[undated]
    return models.get("*")


def batch_rate(provider: str) -> float | None:
    """The share of its price a request through ``provider``'s batch API costs (None: no batch rate known)."""
    rate = _table(env("RESEARCH_PRICES")).get("_batch", {}).get(provider)
    return float(rate) if isinstance(rate, (int, float)) else None


def cost_of(provider: str, model: str, usage: Any, *, batch: bool = False) -> float | None:
    """USD for one call's usage, or ``None`` when the model has no price; ``batch`` prices a request
    answered through the vendor's batch API (its own ``batch_*`` prices, else the provider's batch rate)."""
    price = price_of(provider, model)
    if price is None:
        return None
    if batch:
        rate = batch_rate(provider)
        if "batch_input" in price or "batch_output" in price:
            price = {"input": price.get("batch_input", 0.0), "output": price.get("batch_output", 0.0),
                     "cached_input": price.get("batch_cached_input", price.get("batch_input", 0.0))}
        elif rate is not None:
            price = {name: value * rate for name, value in price.items()}
    cached = min(getattr(usage, "cached_tokens", 0) or 0, usage.input_tokens or 0)
    fresh = (usage.input_tokens or 0) - cached
    cost = (
        fresh * price.get("input", 0.0)
        + cached * price.get("cached_input", price.get("input", 0.0))
        + (usage.output_tokens or 0) * price.get("output", 0.0)
    ) / 1_000_000
    return round(cost, 8)
