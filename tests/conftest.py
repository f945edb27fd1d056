"""Test isolation: every data directory in a temp dir, no credentials, and no network but loopback."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

CREDENTIAL_VARS = (
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "GEMINI_API_KEY",
    "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "FIRECRAWL_API_KEY", "FIRECRAWL_API_URL", "OLLAMA_HOST",
    "RESEARCH_CACHE_DIR", "RESEARCH_PRICES", "RESEARCH_LOCAL_LATENCY", "RESEARCH_CONCURRENCY",
    "RESEARCH_TIMEOUT", "RESEARCH_MAX_RETRIES", "RESEARCH_RETRY_CAP", "RESEARCH_RPM", "RESEARCH_REPORT_DIR",
    "RESEARCH_FETCH_TIMEOUT", "RESEARCH_FETCH_PER_HOST", "RESEARCH_FETCH_MAX_BYTES", "RESEARCH_FETCH_MAX_REDIRECTS",
    # a team's shared store, a reports file or secrets from the developer's shell must never reach a test
    "RESEARCH_STORE", "RESEARCH_CONFIG", "RESEARCH_WEBHOOK_SECRET", "RESEARCH_UI_TOKEN",
)


class NetworkBlocked(RuntimeError):
    pass


def _is_loopback(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:
        return True  # AF_UNIX and friends
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Point the cache at a temp dir, run from a temp cwd, clear credentials, block non-loopback sockets."""
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESEARCH_CACHE_DIR", str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_connect(self, address):
        if not _is_loopback(address):
            raise NetworkBlocked(f"test tried to reach {address!r}; tests may only use loopback servers")
        return real_connect(self, address)

    def guarded_connect_ex(self, address):
        if not _is_loopback(address):
            raise NetworkBlocked(f"test tried to reach {address!r}; tests may only use loopback servers")
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    yield


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: this one without credentials, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    env.update(extra)
    return env
