"""Estimating a model call's cost before it is made, so a budget can stop short of it.

The estimate is an upper bound: input tokens guessed at four characters each, and the full
``max_tokens`` of output, at the model's listed price. An unpriced model is estimated at zero.
"""

from __future__ import annotations

from agent.llm import Usage
from agent.pricing import cost_of
from agent.steps import StepSpec


def estimate(spec: StepSpec) -> float:
    request = spec.request or {}
    chars = len(request.get("prompt", "")) + len(request.get("system", ""))
    usage = Usage(input_tokens=chars // 4 + 1, output_tokens=int(request.get("max_tokens") or 1024))
    return cost_of(spec.provider, spec.model, usage) or 0.0
