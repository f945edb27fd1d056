"""Inputs that used to hang, exhaust memory, leak a password or end in an internal error.

Local files: a FIFO, a symlink to ``/dev/zero``, a file over the size cap, and binary bytes under a
text name each fail as a source with their reason, while real text (with form feeds, in Latin-1, in
UTF-16) still reads. Reads that once hung or read without end run in a child process with a timeout
and a memory limit, so a regression fails the test instead of stalling or exhausting the machine.
Durations and numeric settings refuse ``nan``, ``inf`` and overflow. A password inside a base URL
is masked wherever :func:`agent.secrets.redact` runs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import Limits, env_number, env_numbers, parse_duration
from agent.errors import ProviderError, SourceError, UsageError
from agent.secrets import redact, secret_values, url_credentials
from agent.sources.backend import FetchLimits
from agent.sources.files import expand, looks_binary, read_file
from tests.helpers import CORPUS, QUESTION, ROOT, cli

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero")

# Reads the file named in argv[1] as a run does and prints what came of it as JSON.
_CHILD = """
import json, resource, sys
from pathlib import Path
limit = 1 << 30  # a read that never ends fails here, not in the machine's memory
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from agent.sources.files import read_file
try:
    doc = read_file(Path(sys.argv[1]))
    print(json.dumps({"ok": True, "text": doc.text}))
except Exception as exc:
    print(json.dumps({"ok": False, "type": type(exc).__name__, "message": str(exc)}))
"""


def read_in_child(path: Path, timeout: float = 60) -> dict:
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading {path.name} did not finish within {timeout:g}s")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# -- local files ---------------------------------------------------------------------------------

@posix_only
def test_a_fifo_named_md_fails_as_a_source_instead_of_hanging(tmp_path):
    fifo = tmp_path / "x.md"
    os.mkfifo(fifo)
    result = read_in_child(fifo)
    assert result["ok"] is False and result["type"] == "SourceError"
    assert "FIFO" in result["message"] and "not a regular file" in result["message"]


@posix_only
def test_a_md_symlink_to_dev_zero_is_refused_not_read(tmp_path):
    link = tmp_path / "zero.md"
    link.symlink_to("/dev/zero")
    result = read_in_child(link)
    assert result["ok"] is False and result["type"] == "SourceError"
    assert "a device, not a regular file" in result["message"]


@posix_only
def test_directories_leave_out_fifos_and_devices(tmp_path):
    (tmp_path / "notes.md").write_text("# Notes\n\nHeat pumps move heat.\n")
    os.mkfifo(tmp_path / "pipe.md")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    assert expand([str(tmp_path)]) == [(tmp_path / "notes.md").resolve()]


def test_a_file_over_the_size_cap_fails_and_one_at_the_cap_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_FETCH_MAX_BYTES", "1000")
    at_cap = tmp_path / "fits.txt"
    at_cap.write_bytes(b"word " * 200)
    over = tmp_path / "big.txt"
    over.write_bytes(b"word " * 200 + b"!")
    assert read_file(at_cap).text.startswith("word word")
    with pytest.raises(SourceError, match="larger than the 1,000 bytes limit"):
        read_file(over)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_the_cap_holds_while_reading_when_the_size_on_disk_says_nothing(monkeypatch):
    # /proc files are regular files of size 0 that hold text: only counting what is read catches
    # one past the cap, as it catches a file that grows after its size was looked at.
    monkeypatch.setenv("RESEARCH_FETCH_MAX_BYTES", "100")
    assert os.stat("/proc/self/status").st_size == 0
    with pytest.raises(SourceError, match="larger than the 100 bytes limit"):
        read_file(Path("/proc/self/status"))


def test_the_cap_is_the_web_pages_cap(monkeypatch):
    from agent.sources.files import max_bytes

    assert max_bytes() == FetchLimits().max_bytes
    monkeypatch.setenv("RESEARCH_FETCH_MAX_BYTES", "12345")
    assert max_bytes() == 12345 == FetchLimits.from_limits(None).max_bytes


def test_random_bytes_named_txt_are_not_text(tmp_path):
    noise = tmp_path / "noise.txt"
    noise.write_bytes(os.urandom(4096))
    with pytest.raises(SourceError, match=r"noise.txt is not text: it holds binary data"):
        read_file(noise)


def test_an_elf_binary_named_md_is_not_text(tmp_path):
    # An ELF header (its padding is NULs) in front of readable strings, as executables hold.
    header = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x02\x00\x3e\x00\x01\x00\x00\x00"
    binary = tmp_path / "tool.md"
    binary.write_bytes(header + b"usage: tool [options] file\n" * 40)
    with pytest.raises(SourceError, match="tool.md is not text"):
        read_file(binary)


def test_binary_without_nul_bytes_is_caught_by_its_other_marks():
    controls = bytes(range(1, 8)) * 100 + b"some words"  # control characters text does not use
    high = bytes(0x80 + (i * 37) % 128 for i in range(4000))  # mostly invalid UTF-8, no controls
    assert looks_binary(controls)
    assert looks_binary(high)


def test_real_text_still_reads(tmp_path):
    # Text taken from a PDF separates pages with form feeds; a Latin-1 file is not UTF-8; a UTF-16
    # file with a byte order mark is half NUL bytes. All of them are text.
    pages = tmp_path / "pages.txt"
    pages.write_bytes(b"Heat pumps in the cold.\n\x0cPage two: running costs.\n\x0cPage three.\n")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Les pompes à chaleur fonctionnent en hiver, même à -20 °C.\n".encode("latin-1") * 5)
    wide = tmp_path / "wide.md"
    wide.write_bytes("# Wärmepumpen\n\nSie funktionieren auch bei Frost.\n".encode("utf-16"))
    assert "Page two: running costs." in read_file(pages).text
    assert "même à -20 °C" in read_file(latin).text
    doc = read_file(wide)
    assert doc.title == "Wärmepumpen" and "bei Frost" in doc.text


def test_a_missing_file_is_still_a_usage_error_up_front_and_a_source_error_when_read(tmp_path):
    with pytest.raises(UsageError, match="no such file or directory"):
        expand([str(tmp_path / "gone.md")])
    with pytest.raises(SourceError, match="cannot read"):
        read_file(tmp_path / "gone.md")


# -- durations and numbers -------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["nanh", "NaNm", "infd", "-infs", "1e400h", "1e308w", "-1h", "12", "h", "5x"])
def test_parse_duration_refuses_what_is_not_a_duration(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_parse_duration_still_reads_durations():
    assert parse_duration("30m") == 1800 and parse_duration("12h") == 43200 and parse_duration("7d") == 604800
    assert parse_duration(" 1.5H ") == 5400 and parse_duration("0s") == 0


def test_max_age_nan_is_a_usage_error_before_anything_runs():
    result = cli("run", QUESTION, "--file", CORPUS, "--max-age", "nanh")
    assert result.exit_code == 2
    assert "--max-age 'nanh' is not a duration" in result.stderr


@pytest.mark.parametrize("variable, value", [
    ("RESEARCH_TIMEOUT", "nan"), ("RESEARCH_TIMEOUT", "inf"), ("RESEARCH_RPM", "nan"),
    ("RESEARCH_RETRY_CAP", "1e400"), ("RESEARCH_CONCURRENCY", "inf"), ("RESEARCH_MAX_RETRIES", "-1"),
    ("RESEARCH_TIMEOUT", "abc"),
])
def test_limits_refuse_non_finite_and_negative_numbers_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(UsageError) as caught:
        Limits.from_env()
    assert str(caught.value).startswith(f"{variable}={value!r}")
    assert variable in caught.value.hint


def test_fetch_limits_refuse_nan_too(monkeypatch):
    monkeypatch.setenv("RESEARCH_FETCH_TIMEOUT", "nan")
    with pytest.raises(UsageError, match="RESEARCH_FETCH_TIMEOUT='nan' is not a number"):
        FetchLimits.from_limits(None)


def test_env_number(monkeypatch):
    assert env_number("RESEARCH_LOCAL_LATENCY", float, default=0.0) == 0.0  # unset: the default
    assert env_number("RESEARCH_LOCAL_LATENCY") is None
    monkeypatch.setenv("RESEARCH_LOCAL_LATENCY", "0.25")
    assert env_number("RESEARCH_LOCAL_LATENCY", float, default=0.0, minimum=0) == 0.25
    monkeypatch.setenv("RESEARCH_LOCAL_LATENCY", "abc")
    with pytest.raises(UsageError, match="RESEARCH_LOCAL_LATENCY='abc' is not a number"):
        env_number("RESEARCH_LOCAL_LATENCY", float, default=0.0, minimum=0)
    monkeypatch.setenv("RESEARCH_LOCAL_LATENCY", "-2")
    with pytest.raises(UsageError, match="RESEARCH_LOCAL_LATENCY='-2' is below 0"):
        env_number("RESEARCH_LOCAL_LATENCY", float, minimum=0)
    monkeypatch.setenv("RESEARCH_CONCURRENCY", "2.5")
    with pytest.raises(UsageError, match="is not a whole number"):
        env_number("RESEARCH_CONCURRENCY", int)
    monkeypatch.setenv("RESEARCH_CONCURRENCY", "3")
    assert env_numbers((("concurrency", "RESEARCH_CONCURRENCY", int),)) == {"concurrency": 3}


# -- passwords in URLs -----------------------------------------------------------------------------

def test_redact_masks_the_password_of_any_url():
    text = "GET https://bob:tiny@proxy.example:8080/v1 failed; also ftp://u:p%40ss@files.example/x"
    assert redact(text) == "GET https://bob:***@proxy.example:8080/v1 failed; also ftp://u:***@files.example/x"
    # no password, or a port rather than a password: nothing to mask
    kept = "ssh://git@github.com and http://host:8080/a@b"
    assert redact(kept) == kept


def test_credentials_in_base_url_variables_are_masked_anywhere(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "https://alice:s3cr3t%21pw@llm.example/v1")
    monkeypatch.setenv("OLLAMA_HOST", "carol:ollama-pass@10.0.0.5:11434")  # no scheme, as Ollama allows
    monkeypatch.setenv("FIRECRAWL_API_URL", "https://fc-token-0123456789abcdef@crawl.example")
    values = secret_values()
    assert {"s3cr3t%21pw", "s3cr3t!pw", "ollama-pass", "fc-token-0123456789abcdef"} <= set(values)
    echoed = "401 for user alice (password s3cr3t!pw); carol/ollama-pass; token fc-token-0123456789abcdef"
    masked = redact(echoed)
    assert "s3cr3t" not in masked and "ollama-pass" not in masked and "fc-token" not in masked
    assert masked.startswith("401 for user alice (password ***)")


def test_url_credentials():
    assert url_credentials("https://user:pw@host/v1") == ["pw"]
    assert url_credentials("https://TOKEN1234@host") == ["TOKEN1234"]
    assert url_credentials("user:p%2Fw@host:11434") == ["p%2Fw", "p/w"]
    assert url_credentials("https://host:443/v1") == [] and url_credentials("http://[::1") == []


def test_a_provider_error_naming_the_endpoint_is_redacted(monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on: the call is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000000000")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://alice:Pa55w0rd-xyz@127.0.0.1:{port}/v1")
    import asyncio

    from agent.llm import CompletionRequest
    from agent.providers import get_provider

    provider = get_provider("openai:gpt-4o-mini", limits=Limits(max_retries=0))

    async def call():
        try:
            await provider.call(CompletionRequest(prompt="hello"))
        finally:
            await provider.aclose()

    with pytest.raises(ProviderError) as caught:
        asyncio.run(call())
    shown = redact(caught.value.one_line())
    assert f"alice:***@127.0.0.1:{port}" in shown  # the server is still named, its password is not
    assert "Pa55w0rd" not in shown
