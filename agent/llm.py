"""The project's own model types, and the durable model step.

Pipelines build a :class:`CompletionRequest`, hand it with a provider to :func:`complete`, and get a
:class:`Completion` back, replayed or paid. No SDK type crosses this line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from agent.steps import Paid, Runtime, StepResult, StepSpec


@dataclass(frozen=True)
class CompletionRequest:
    """One model call. Every field is part of the step key.

    ``context`` carries the structured inputs behind the rendered prompt (question, sources); hosted
    models ignore it, the offline extractive model works from it. ``offline`` names the offline
    model's operation for this request (from the template); it is part of the key only for providers
    that read it, so hosted models' keys do not depend on it.
    """

    prompt: str
    system: str = ""
    max_tokens: int = 1024
    temperature: float | None = 0.0
    context: dict[str, Any] | None = None
    offline: str | None = None

    def for_key(self, *, offline: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not offline:
            data.pop("offline")
        return data


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass
class Completion:
    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "usage": asdict(self.usage), "model": self.model,
                "finish_reason": self.finish_reason}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Completion":
        return cls(text=data["text"], usage=Usage(**data.get("usage") or {}), model=data.get("model", ""),
                   finish_reason=data.get("finish_reason", ""))


def llm_spec(provider: Any, request: CompletionRequest, name: str) -> StepSpec:
    """The step that ``request`` to ``provider`` is: the endpoint is in the key, the API key never."""
    return StepSpec(kind="llm", name=name, provider=provider.name, endpoint=provider.endpoint,
                    model=provider.model, request=request.for_key(offline=provider.reads_offline_hint))


async def complete(runtime: Runtime, provider: Any, request: CompletionRequest, *, name: str) -> tuple[Completion, StepResult]:
    """Ask ``provider`` for a completion as a durable step."""
    from agent.pricing import cost_of

    async def work() -> Paid:
        completion = await provider.call(request)
        usage = completion.usage
        return Paid(
            value=completion.to_json(),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=cost_of(provider.name, provider.model, usage),
            usage=asdict(usage),
            detail={"finish_reason": completion.finish_reason} if completion.finish_reason not in ("", "stop") else None,
        )

    result = await runtime.step(llm_spec(provider, request, name), work)
    return Completion.from_json(result.value), result
