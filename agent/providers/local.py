"""``local:extractive``: the offline default model. Not a language model.

It answers every task the pipelines ask of a model by extracting and citing sentences from the sources
(see :mod:`agent.extractive`), deterministically, with no key and no network, through the same durable
steps as a hosted model. ``RESEARCH_LOCAL_LATENCY`` (seconds) makes each call wait that long, to
rehearse a slow provider in demos, benchmarks and crash drills.
"""

from __future__ import annotations

import asyncio
import json

from agent import extractive
from agent.citations import agreement
from agent.config import env
from agent.errors import UsageError
from agent.llm import Completion, CompletionRequest, Usage
from agent.providers.base import Provider

MODELS = ("extractive",)
#: Part of every local step key: bump it when the extractor's output changes, so old answers are not replayed.
ENGINE_VERSION = 2


def _bullets(question: str, items: list[dict], limit: int) -> list[tuple[int, str]]:
    """Best sentences across ``items`` (each with ``id`` and ``text``), best first, as (id, sentence)."""
    pool = [(item["id"], s) for item in items for s in extractive.sentences(item.get("text", ""))]
    scores = extractive.rank(question, [s for _, s in pool])
    order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))
    seen: set[str] = set()
    out = []
    for i in order:
        sid, sent = pool[i]
        if sent not in seen:
            seen.add(sent)
            out.append((sid, sent))
        if len(out) == limit:
            break
    return out


def cite(sentence: str, sid: int) -> str:
    """``sentence`` with ``[sid]`` placed before its closing punctuation."""
    if sentence[-1:] in ".!?":
        return f"{sentence[:-1]} [{sid}]{sentence[-1]}"
    return f"{sentence} [{sid}]"


def summarize(ctx: dict) -> str:
    source = ctx["source"]
    picked = extractive.top_sentences(ctx["question"], source.get("text", ""), int(ctx.get("sentences", 4)))
    return " ".join(picked) if picked else "The source has no prose relevant to the question."


def analyze(ctx: dict) -> str:
    lines = [f"- {cite(sent, sid)}" for sid, sent in _bullets(ctx["question"], ctx["summaries"], 6)]
    return "\n".join(lines) if lines else "- The sources say nothing relevant to the question."


def report(ctx: dict) -> str:
    best = _bullets(ctx["question"], ctx["summaries"], 5)
    answer = " ".join(cite(sent, sid) for sid, sent in best) or "The sources do not answer the question."
    return "\n".join(["## Answer", "", answer, "", agreement(ctx.get("analyses", []))])


def plan(ctx: dict) -> str:
    text = " ".join(s.get("text", "") for s in ctx.get("summaries", []))
    terms = extractive.keywords(text, int(ctx.get("breadth", 2)) * 2, exclude=ctx["question"])
    breadth = int(ctx.get("breadth", 2))
    queries = [f"{ctx['question']} {' '.join(terms[i * 2:i * 2 + 2])}".strip() for i in range(breadth) if terms[i * 2:i * 2 + 2]]
    return json.dumps({"queries": queries})


TASKS = {"summarize": summarize, "analyze": analyze, "report": report, "plan": plan}


class LocalProvider(Provider):
    name = "local"
    # Small on purpose: long sources go through the same map-reduce path offline as with hosted models.
    context_window = 8_000

    def __init__(self, model: str, **kwargs) -> None:
        if model not in MODELS:
            raise UsageError(f"unknown local model {model!r}", hint=f"use one of: {', '.join('local:' + m for m in MODELS)}")
        super().__init__(model, **kwargs)

    @property
    def endpoint(self) -> str:
        return f"local://{self.model}/v{ENGINE_VERSION}"

    async def complete(self, request: CompletionRequest) -> Completion:
        latency = float(env("RESEARCH_LOCAL_LATENCY") or 0)
        if latency > 0:
            await asyncio.sleep(latency)
        ctx = request.context or {}
        task = TASKS.get(ctx.get("task", ""))
        if task is not None:
            text = task(ctx)
        else:
            text = " ".join(extractive.top_sentences(request.system, request.prompt, 5))
        return Completion(
            text=text,
            usage=Usage(input_tokens=len((request.system + " " + request.prompt).split()), output_tokens=len(text.split())),
            model=self.model,
            finish_reason="stop",
        )
