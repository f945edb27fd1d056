"""Step keys: stable, order independent, and blind to what must not matter."""

import subprocess
import sys

from agent.keys import KEY_PREFIX, canonical_json, content_hash, step_key
from agent.llm import CompletionRequest, llm_spec
from agent.providers import get_provider


def test_canonical_json_sorts_keys_and_drops_whitespace():
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":1}'


def test_key_does_not_depend_on_dict_order():
    a = step_key("llm", provider="openai", model="m", request={"prompt": "x", "max_tokens": 5, "opts": {"a": 1, "b": 2}})
    b = step_key("llm", model="m", provider="openai", request={"opts": {"b": 2, "a": 1}, "max_tokens": 5, "prompt": "x"})
    assert a == b


def test_every_keyed_field_changes_the_key():
    base = dict(provider="openai", endpoint="https://api.example/v1", model="m", request={"prompt": "x"})
    key = step_key("llm", **base)
    for field, other in [("provider", "anthropic"), ("endpoint", "http://127.0.0.1:8000/v1"),
                         ("model", "m2"), ("request", {"prompt": "y"})]:
        assert step_key("llm", **{**base, field: other}) != key, field
    assert step_key("scrape", **base) != key
    assert step_key("llm", **base, schema_version=2) != key


def test_key_has_version_prefix_and_kind():
    key = step_key("llm", request={"prompt": "x"})
    assert key.startswith(f"{KEY_PREFIX}:llm:")
    assert len(key.rsplit(":", 1)[1]) == 64


def test_same_inputs_same_key_in_another_process():
    code = "from agent.keys import step_key; print(step_key('llm', provider='p', model='m', request={'z': 1, 'a': [1, 2]}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == step_key("llm", provider="p", model="m", request={"a": [1, 2], "z": 1})


def test_api_keys_timeouts_and_retries_are_not_in_llm_keys(monkeypatch):
    provider = get_provider("local:extractive")
    request = CompletionRequest(prompt="hello", system="sys")
    before = llm_spec(provider, request, "a").key
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-should-not-matter")
    monkeypatch.setenv("RESEARCH_TIMEOUT", "3")
    monkeypatch.setenv("RESEARCH_MAX_RETRIES", "9")
    monkeypatch.setenv("RESEARCH_CONCURRENCY", "1")
    again = get_provider("local:extractive")
    assert llm_spec(again, request, "another label").key == before


def test_content_hash_is_sha256_of_canonical_json():
    import hashlib

    assert content_hash({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()
