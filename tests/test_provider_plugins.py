"""A third-party provider, installed as a real distribution (a dist-info with an entry point), runs through
the CLI like a built-in one: paid once, replayed after; entry points are read only for names not built in."""

from __future__ import annotations

import sys
import textwrap

import pytest

from agent.errors import UsageError
from agent.providers import get_provider, parse_model_id
from tests.helpers import CORPUS, QUESTION, cli, cli_json

PLUGIN = '''
"""A tiny provider: answers every request from its prompt alone, deterministically."""
import hashlib

from agent.llm import Completion, Usage
from agent.providers.base import Provider

CALLS = []


class TinyProvider(Provider):
    name = "myplug"
    context_window = 4_000

    @property
    def endpoint(self):
        return f"myplug://{self.model}"

    async def complete(self, request):
        CALLS.append(request)
        digest = hashlib.sha256(request.prompt.encode()).hexdigest()[:8]
        text = f"## Answer\\n\\nmyplug {self.model} says {digest}: heat pumps work in the cold [1]."
        return Completion(text=text, usage=Usage(input_tokens=len(request.prompt.split()), output_tokens=12),
                          model=self.model, finish_reason="stop")


class NotAProvider:
    name = "broken"
'''


@pytest.fixture
def myplug(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "myplug_provider.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "myplug_provider-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug-provider\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[durable_research.providers]\nmyplug = myplug_provider:TinyProvider\n"
        "broken = myplug_provider:NotAProvider\nmissing = myplug_provider_gone:Provider\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("myplug_provider", None)


def test_a_plugin_provider_runs_through_the_cli_and_replays(myplug, tmp_path):
    cache = tmp_path / "c"
    out = tmp_path / "out"
    args = ["run", QUESTION, "--file", CORPUS, "--model", "myplug:tiny", "--cache-dir", cache, "--out", out]
    first = cli_json(*args, "--run-id", "p1")
    assert first["status"] == "completed"
    report = (out / "p1.md").read_text()
    assert "myplug tiny says" in report and "`myplug:tiny`" in report
    plugin = sys.modules["myplug_provider"]
    paid = len(plugin.CALLS)
    assert paid > 0
    again = cli_json(*args, "--run-id", "p2")
    assert again["status"] == "completed" and len(plugin.CALLS) == paid  # everything replayed
    steps = cli_json("show", "p1", "--cache-dir", cache)["steps"]
    llm = [s for s in steps if s["kind"] == "llm"]
    assert llm and {(s["provider"], s["model"]) for s in llm} == {("myplug", "tiny")}


def test_plugin_names_are_known_to_the_parser_and_in_its_hint(myplug):
    assert parse_model_id("MyPlug:tiny") == ("myplug", "tiny")
    with pytest.raises(UsageError) as caught:
        parse_model_id("nonesuch:x")
    assert "myplug" in caught.value.one_line() and "openai" in caught.value.one_line()


def test_a_plugin_that_is_not_a_provider_or_does_not_load_is_a_usage_error(myplug):
    with pytest.raises(UsageError, match="not a Provider subclass named 'broken'"):
        get_provider("broken:x")
    with pytest.raises(UsageError, match="'missing'.*failed to load"):
        get_provider("missing:x")
    result = cli("run", QUESTION, "--file", CORPUS, "--model", "broken:x")
    assert result.exit_code == 2 and "broken" in result.stderr


def test_built_in_names_never_read_entry_points(monkeypatch):
    import importlib.metadata

    def refuse(*args, **kwargs):
        raise AssertionError("entry points were read for a built-in provider")

    monkeypatch.setattr(importlib.metadata, "entry_points", refuse)
    for model_id in ("local:extractive", "openai:gpt-4o-mini", "ollama:llama3.2", "gemini:gemini-2.5-flash"):
        parse_model_id(model_id)
        get_provider(model_id)
