"""Keys never reach the cache, journal, reports or messages; invented citations never reach a report."""

import re
from pathlib import Path

from tests.helpers import CORPUS, QUESTION, cli, cli_json
from tests.servers import serve
from tests.servers.openai_api import OpenAIAPI

SECRET = "sk-proj-SECRETSECRET0123456789abcdef"


class Inventive(OpenAIAPI):
    """Cites a real source and one that does not exist."""

    def answer_text(self, model, request):
        return "Heat pumps keep working in the cold [1]. A famous study proves it [42]. Costs vary [2, 17]."


def every_file_text(*roots: Path) -> str:
    chunks = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                chunks.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


def test_api_key_is_nowhere_on_disk_or_in_output(tmp_path, monkeypatch):
    with serve(OpenAIAPI(key=SECRET)) as server:
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        ok = cli("run", QUESTION, "--file", CORPUS, "--model", "openai:gpt-4o-mini", "--run-id", "s1",
                 "--format", "md,html,json", "--json")
        assert ok.exit_code == 0, ok.stderr
        assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"  # it was really used
        shown = cli("show", "s1", "--json")
        # a rejection that echoes the key back, as some vendors do
        monkeypatch.setenv("OPENAI_API_KEY", SECRET + "X")
        rejected = cli("run", "Another question?", "--file", CORPUS, "--model", "openai:gpt-4o-mini", "--run-id", "s2")
    assert rejected.exit_code == 1 and "OPENAI_API_KEY" in rejected.stderr
    outputs = ok.stdout + ok.stderr + shown.stdout + rejected.stdout + rejected.stderr
    disk = every_file_text(Path(tmp_path / "cache"), Path("reports"))
    assert "journal" in "".join(p.name for p in (tmp_path / "cache").iterdir())
    for text in (outputs, disk):
        assert SECRET not in text
        assert SECRET[8:24] not in text


def test_invented_citations_are_removed_and_reported(monkeypatch):
    with serve(Inventive()) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000000000")
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        out = cli_json("run", QUESTION, "--file", CORPUS, "--model", "openai:gpt-4o-mini")
    report = Path(out["report_path"]).read_text()
    body = report.split("## References")[0]
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", body)}
    assert cited <= {1, 2, 3, 4, 5}
    assert "[42]" not in report and "[17]" not in report
    assert "openai:gpt-4o-mini cited source numbers 17, 42, which do not exist" in report
    assert "Costs vary [2]." in report
    # the model wrote no comparison section, so the report adds one from what each analysis cited
    assert "## Where the models agreed and disagreed" in report


class Scripted(OpenAIAPI):
    """Answers with markup, as a confused or manipulated model might."""

    def answer_text(self, model, request):
        return 'Fine [1]. <script>alert("x")</script> <img src=x onerror=alert(1)>'


def test_model_markup_is_escaped_in_the_html_report(monkeypatch):
    with serve(Scripted()) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000000000")
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        out = cli_json("run", QUESTION, "--file", CORPUS, "--model", "openai:gpt-4o-mini", "--format", "html")
    page = Path(out["report_paths"]["html"]).read_text()
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;" in page


class Echoing(OpenAIAPI):
    """Rejects a wrong key by quoting it back, as some vendors' 401 bodies do."""

    def bad_key(self):
        return self.error(401, f"Incorrect API key provided: {self.last_key}.")

    def presented_key(self, request):
        self.last_key = super().presented_key(request)
        return self.last_key


def test_debug_tracebacks_and_base_url_passwords_are_redacted(tmp_path, monkeypatch):
    """--debug shows the chained SDK errors, whose text echoes the rejected key: it is taken out there too,
    and so is a password written into a base URL."""
    wrong = SECRET + "X"
    with serve(Echoing(key=SECRET)) as server:
        monkeypatch.setenv("OPENAI_API_KEY", wrong)
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        rejected = cli("run", QUESTION, "--file", CORPUS, "--model", "openai:gpt-4o-mini", "--run-id", "d1", "--debug")
        host = server.url.split("//", 1)[1]
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://admin:hunter2-pass@{host}/v1")
        with_password = cli("run", QUESTION, "--file", CORPUS, "--model", "openai:gpt-4o-mini", "--run-id", "d2",
                            "--debug")
        shown = cli("show", "d2", "--json")
    assert rejected.exit_code == 1 and with_password.exit_code == 1
    assert "Traceback" in rejected.stderr and "openai.AuthenticationError" in rejected.stderr  # the chain is shown
    assert "Incorrect API key provided: " in rejected.stderr  # with the vendor's echo, minus the key
    outputs = rejected.stdout + rejected.stderr + with_password.stderr + shown.stdout
    for text in (outputs, every_file_text(tmp_path / "cache")):
        assert wrong not in text and SECRET[8:24] not in text
        assert "hunter2-pass" not in text
