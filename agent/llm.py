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

    ``schema`` asks for a JSON object answer of that JSON Schema, through each vendor's structured
    output (the offline model ignores it: its operations answer their own formats). A request without
    one has the same key as before the field existed.
    """

    prompt: str
    system: str = ""
    max_tokens: int = 1024
    temperature: float | None = 0.0
    context: dict[str, Any] | None = None
    offline: str | None = None
    schema: dict[str, Any] | None = None

    def for_key(self, *, offline: bool = False) -> dict[str, Any]:
        # The fields as they are (asdict would deep-copy the context and its source text, only for the
        # copy to be serialized and dropped).
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if not offline:
            data.pop("offline")
        if data["schema"] is None:  # absent, not null: keys of requests without one never move
            data.pop("schema")
        return data


#: The finish reasons a :class:`Completion` says, whoever made it: ``stop`` (the model finished),
#: ``length`` (cut at the output limit or the context window) and ``filter`` (stopped by the vendor's
#: safety or recitation filter). Any other reason is kept as the vendor spelt it, in lower case.
FINISH_REASONS = ("stop", "length", "filter")

# Every vendor's spelling of the three, in lower case: OpenAI's finish_reason, Anthropic's stop_reason,
# Gemini's FinishReason. No spelling means one thing to one vendor and another to the next.
_FINISH_SPELLINGS = {
    "stop": "stop", "end_turn": "stop", "stop_sequence": "stop",
    "length": "length", "max_tokens": "length", "model_context_window_exceeded": "length",
    "content_filter": "filter", "refusal": "filter", "safety": "filter", "recitation": "filter",
    "blocklist": "filter", "prohibited_content": "filter", "spii": "filter", "image_safety": "filter",
    "image_prohibited_content": "filter", "image_recitation": "filter", "model_armor": "filter",
}


def normalize_finish_reason(raw: Any) -> str:
    """A vendor's stop reason as one of :data:`FINISH_REASONS`, else as the vendor gave it (lower case)."""
    reason = str(getattr(raw, "value", raw) or "").strip().lower()
    return _FINISH_SPELLINGS.get(reason, reason)


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass
class Completion:
    """A model's answer. ``finish_reason`` is one of :data:`FINISH_REASONS` or the vendor's own word;
    ``notes`` say what the adapter had to do differently from what was asked (a server that refused
    structured output, so the request went again without it), for the report to pass on."""

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str = ""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = {"text": self.text, "usage": asdict(self.usage), "model": self.model,
                "finish_reason": self.finish_reason}
        if self.notes:  # only when there are some: stored records keep their shape
            data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Completion":
        # Records stored before reasons were normalized say the vendor's word ("end_turn", "max_tokens").
        return cls(text=data["text"], usage=Usage(**data.get("usage") or {}), model=data.get("model", ""),
                   finish_reason=normalize_finish_reason(data.get("finish_reason", "")),
                   notes=list(data.get("notes") or []))


def llm_spec(provider: Any, request: CompletionRequest, name: str) -> StepSpec:
    """The step that ``request`` to ``provider`` is: the endpoint is in the key, the API key never."""
    return StepSpec(kind="llm", name=name, provider=provider.name, endpoint=provider.endpoint,
                    model=provider.model, request=request.for_key(offline=provider.reads_offline_hint))


async def complete(runtime: Runtime, provider: Any, request: CompletionRequest, *, name: str) -> tuple[Completion, StepResult]:
    """Ask ``provider`` for a completion as a durable step."""
    from agent.pricing import cost_of

    spec = llm_spec(provider, request, name)

    async def work() -> Paid:
        batched = None
        if runtime.batcher is not None:  # a batched run: the vendor's batch API answers, at its price
            batched = await runtime.batcher.complete(provider, request, spec.key)
        completion = batched[0] if batched is not None else await provider.call(request)
        usage = completion.usage
        detail: dict[str, Any] = {}
        if completion.finish_reason not in ("", "stop"):
            detail["finish_reason"] = completion.finish_reason
        cost = cost_of(provider.name, provider.model, usage, batch=batched is not None)
        if batched is not None:
            detail["batch"] = batched[1]
            detail["sync_cost_usd"] = cost_of(provider.name, provider.model, usage)
        return Paid(value=completion.to_json(), input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                    cost_usd=cost, usage=asdict(usage), detail=detail or None)

    result = await runtime.step(spec, work)
    return Completion.from_json(result.value), result
