"""The reports file: parsing research.toml, its defaults and paths, and one clear line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import UsageError
from agent.reportfile import ReportSpec, ReportsFile, load_reports, resolve_config_path

FULL = """
[reports.nightly-heat-pumps]
question = "What changed in EU heat pump subsidies?"
files = ["notes/", "extra.md"]
urls = ["https://example.org/a"]
urls_file = "lists/urls.txt"
search = 3
depth = 1
breadth = 4
models = ["openai:gpt-4o-mini", "local:extractive"]
schedule = "0  6 * * *"
timezone = "Europe/Paris"
max_age = "20h"
formats = ["md", "html", "md"]
out = "out/reports"
keep = 30
max_cost = 1.50
webhook = "https://hooks.example.org/x"
allow_private_hosts = true
"""

MINIMAL = """
[reports.nightly]
question = "Q?"
urls = ["https://example.org/a"]
schedule = "0 6 * * *"
"""


@pytest.fixture(autouse=True)
def no_config_variable(monkeypatch):
    monkeypatch.delenv("RESEARCH_CONFIG", raising=False)


@pytest.fixture
def cfg(tmp_path) -> Path:
    """A config directory away from the cwd, so config-relative and cwd-relative paths differ."""
    directory = tmp_path / "cfg"
    (directory / "notes").mkdir(parents=True)
    (directory / "extra.md").write_text("# extra\n")
    (directory / "lists").mkdir()
    (directory / "lists" / "urls.txt").write_text("# sources\nhttps://example.org/b\n\n  https://example.org/c  \n")
    return directory


def write(directory: Path, text: str, name: str = "research.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def error(path: Path) -> UsageError:
    with pytest.raises(UsageError) as info:
        load_reports(str(path))
    assert "\n" not in info.value.one_line()
    return info.value


def test_a_full_report_loads_with_every_field(cfg):
    path = write(cfg, FULL)
    spec = load_reports(str(path)).get("nightly-heat-pumps")
    assert spec == ReportSpec(
        name="nightly-heat-pumps", question="What changed in EU heat pump subsidies?",
        files=[str(cfg / "notes"), str(cfg / "extra.md")],
        urls=["https://example.org/a", "https://example.org/b", "https://example.org/c"],
        search=3, depth=1, breadth=4, models=["openai:gpt-4o-mini", "local:extractive"],
        schedule="0 6 * * *", timezone="Europe/Paris", max_age=72000.0, formats=["md", "html"],
        out_dir=str(cfg / "out" / "reports"), keep=30, max_cost=1.5, webhook="https://hooks.example.org/x",
        allow_private_hosts=True,
    )


def test_defaults(cfg, monkeypatch):
    spec = load_reports(str(write(cfg, MINIMAL))).get("nightly")
    assert (spec.files, spec.search, spec.depth, spec.breadth) == ([], 0, 0, 2)
    assert spec.models == ["local:extractive"]
    assert (spec.timezone, spec.formats, spec.out_dir) == ("UTC", ["md"], "reports")
    assert (spec.max_age, spec.keep, spec.max_cost, spec.webhook, spec.allow_private_hosts) == (
        None, None, None, None, False)
    monkeypatch.setenv("RESEARCH_REPORT_DIR", "/srv/reports")
    assert load_reports(str(cfg / "research.toml")).get("nightly").out_dir == "/srv/reports"
    # An explicit out still wins over the variable.
    with_out = write(cfg, MINIMAL + 'out = "mine"\n', "with-out.toml")
    assert load_reports(str(with_out)).get("nightly").out_dir == str(cfg / "mine")


def test_numbers_keep_their_meaning(cfg):
    spec = load_reports(str(write(cfg, MINIMAL + "max_cost = 2\nmax_age = \"30m\"\n"))).get("nightly")
    assert spec.max_cost == 2.0 and isinstance(spec.max_cost, float)
    assert spec.max_age == 1800.0
    assert load_reports(str(write(cfg, MINIMAL + "max_cost = 0\n", "zero.toml"))).get("nightly").max_cost == 0.0


def test_absolute_file_paths_are_kept(cfg, tmp_path):
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_text("x")
    path = write(cfg, f'[reports.r]\nquestion = "Q"\nfiles = ["{elsewhere}"]\nschedule = "@daily"\n')
    assert load_reports(str(path)).get("r").files == [str(elsewhere)]


def test_the_default_file_is_research_toml_in_the_cwd():
    Path("notes").mkdir()
    write(Path.cwd(), '[reports.here]\nquestion = "Q"\nfiles = ["notes"]\nschedule = "0 6 * * *"\n')
    loaded = load_reports()
    assert loaded.path == Path("research.toml")
    assert list(loaded.reports) == ["here"]
    assert Path(loaded.get("here").files[0]).resolve() == (Path.cwd() / "notes").resolve()


def test_explicit_path_beats_the_variable_which_beats_the_default(cfg, monkeypatch):
    write(Path.cwd(), MINIMAL.replace("nightly", "from-cwd"))
    from_env = write(cfg, MINIMAL.replace("nightly", "from-env"), "env.toml")
    explicit = write(cfg, MINIMAL.replace("nightly", "from-flag"), "flag.toml")
    assert resolve_config_path(None) == Path("research.toml")
    assert list(load_reports().reports) == ["from-cwd"]
    monkeypatch.setenv("RESEARCH_CONFIG", str(from_env))
    assert resolve_config_path(None) == from_env
    assert list(load_reports().reports) == ["from-env"]
    assert resolve_config_path(str(explicit)) == explicit
    assert list(load_reports(str(explicit)).reports) == ["from-flag"]


def test_reports_keep_file_order_and_unknown_names_list_the_known(cfg):
    path = write(cfg, MINIMAL + MINIMAL.replace("nightly", "weekly") + MINIMAL.replace("nightly", "adhoc"))
    loaded = load_reports(str(path))
    assert isinstance(loaded, ReportsFile) and list(loaded.reports) == ["nightly", "weekly", "adhoc"]
    with pytest.raises(UsageError) as info:
        loaded.get("daily")
    assert info.value.message == f"{path}: no report named 'daily'"
    assert info.value.hint == "known reports: nightly, weekly, adhoc"


# The file itself

def test_a_missing_file_says_how_to_create_one_with_an_example_that_works(cfg):
    exc = error(cfg / "research.toml")
    assert exc.message == f"no reports file: {cfg / 'research.toml'}"
    example = exc.hint.split("for example:\n", 1)[1]
    assert example.startswith("[reports.") and len(example.splitlines()) == 4
    write(cfg, example)
    assert len(load_reports(str(cfg / "research.toml")).reports) == 1


def test_toml_syntax_errors_give_the_line(cfg):
    exc = error(write(cfg, '[reports.nightly]\nquestion = "unterminated\nschedule = "0 6 * * *"\n'))
    assert exc.message.startswith(f"{cfg / 'research.toml'}: not valid TOML: ") and "line 2" in exc.message


def test_unreadable_files_are_usage_errors(cfg):
    (cfg / "bin.toml").write_bytes(b'[reports.x]\nquestion = "\xff"\n')
    assert "not UTF-8" in error(cfg / "bin.toml").message
    assert "cannot read" in error(cfg).message  # a directory


@pytest.mark.parametrize("text, message, hint", [
    ('title = "x"\n' + MINIMAL, "unknown top-level key 'title'", "[reports.NAME] and [models.NAME] tables"),
    (MINIMAL.replace("[reports.", "[report."), "unknown top-level key 'report'", "did you mean 'reports'?"),
    ("reports = 3\n", "'reports' must be a table of [reports.NAME] tables", "[reports.NAME]"),
    ("", "no reports defined", "[reports.NAME]"),
    ("[reports]\n", "no reports defined", "[reports.NAME]"),
])
def test_top_level_mistakes(cfg, text, message, hint):
    exc = error(write(cfg, text))
    assert exc.message == f"{cfg / 'research.toml'}: {message}"
    assert hint in exc.hint


def test_every_report_is_checked_before_any_is_used(cfg):
    exc = error(write(cfg, MINIMAL + MINIMAL.replace("nightly", "weekly").replace("0 6 * * *", "0 6 * *")))
    assert "report 'weekly': field 'schedule'" in exc.message


# One line per mistake, naming the file, the report and the field

BAD_FIELDS = [
    ('schedul = "0 6 * * *"', "unknown field 'schedul'", "did you mean 'schedule'? known fields: question"),
    ('model = "openai:gpt-4o"', "unknown field 'model'", "did you mean 'models'?"),
    ('search = true', "field 'search' must be an integer, not a boolean", None),
    ('search = "3"', "field 'search' must be an integer, not a string", None),
    ('depth = -1', "field 'depth' must be at least 0, got -1", None),
    ('breadth = 0', "field 'breadth' must be at least 1, got 0", None),
    ('keep = 0', "field 'keep' must be at least 1, got 0", None),
    ('keep = 1.5', "field 'keep' must be an integer, not a float", None),
    ('timezone = "Mars/Olympus_Mons"', "field 'timezone': unknown timezone 'Mars/Olympus_Mons'", "IANA"),
    ('timezone = 1', "field 'timezone' must be a string", None),
    ('max_age = "20 hours"', "field 'max_age': '20 hours' is not a duration", "30m"),
    ('max_age = "nanh"', "field 'max_age'", None),
    ('max_age = "infd"', "field 'max_age'", None),
    ('max_age = "-1h"', "field 'max_age'", None),
    ('max_age = 3600', "field 'max_age' must be a string", None),
    ('formats = ["md", "pdf"]', "field 'formats': unknown format 'pdf'", "md, html, json"),
    ('formats = []', "field 'formats' is empty", None),
    ('formats = "md"', "field 'formats' must be a list of non-empty strings", None),
    ('max_cost = -1', "field 'max_cost' must be a finite number >= 0", None),
    ('max_cost = nan', "field 'max_cost' must be a finite number >= 0", None),
    ('max_cost = "1.50"', "field 'max_cost' must be a number of USD", None),
    ('webhook = "ftp://hooks.example.org/x"', "field 'webhook': 'ftp://hooks.example.org/x' is not an http", None),
    ('webhook = "hooks.example.org/x"', "field 'webhook'", None),
    ('allow_private_hosts = "yes"', "field 'allow_private_hosts' must be true or false", None),
    ('models = []', "field 'models' is empty", None),
    ('models = "local:extractive"', "field 'models' must be a list", None),
    ('out = ""', "field 'out' is empty", None),
    ('files = ["missing/"]', "field 'files': no such file or directory:", "relative to"),
    ('files = "notes/"', "field 'files' must be a list", None),
    ('urls_file = "nope.txt"', "field 'urls_file': no such file:", None),
    ('urls_file = "bad-urls.txt"', "field 'urls_file': 'example.org/page' is not an http", "https://example.org/page"),
]


@pytest.mark.parametrize("line, message, hint", BAD_FIELDS, ids=[b[0] for b in BAD_FIELDS])
def test_field_mistakes(cfg, line, message, hint):
    (cfg / "bad-urls.txt").write_text("https://example.org/ok\nexample.org/page\n")
    exc = error(write(cfg, MINIMAL + line + "\n"))
    assert exc.message.startswith(f"{cfg / 'research.toml'}: report 'nightly': {message}")
    if hint:
        assert hint in exc.hint


@pytest.mark.parametrize("body, message", [
    ('urls = ["https://example.org/a"]\nschedule = "0 6 * * *"', "missing field 'question'"),
    ('question = "   "\nurls = ["https://example.org/a"]\nschedule = "0 6 * * *"', "field 'question' is empty"),
    ('question = 3\nurls = ["https://example.org/a"]\nschedule = "0 6 * * *"', "field 'question' must be a string"),
    ('question = "Q"\nurls = ["https://example.org/a"]', "missing field 'schedule'"),
    ('question = "Q"\nurls = ["https://example.org/a"]\nschedule = "0 25 * * *"', "field 'schedule': '0 25 * * *'"),
    ('question = "Q"\nurls = ["https://example.org/a"]\nschedule = "0 6 * * * 2026"',
     "field 'schedule': '0 6 * * * 2026' has 6"),
    ('question = "Q"\nurls = ["example.org"]\nschedule = "0 6 * * *"', "field 'urls': 'example.org' is not an http"),
    ('question = "Q"\nschedule = "0 6 * * *"', "no sources"),
    ('question = "Q"\nsearch = 0\nfiles = []\nschedule = "0 6 * * *"', "no sources"),
])
def test_required_fields_and_sources(cfg, body, message):
    exc = error(write(cfg, f"[reports.nightly]\n{body}\n"))
    assert exc.message.startswith(f"{cfg / 'research.toml'}: report 'nightly': {message}")


def test_search_alone_is_a_source(cfg):
    path = write(cfg, '[reports.web]\nquestion = "Q"\nsearch = 5\nschedule = "0 6 * * *"\n')
    assert load_reports(str(path)).get("web").search == 5


@pytest.mark.parametrize("name", ["bad name", "-dash-first", "x" * 49, "caf\u00e9"])
def test_bad_report_names(cfg, name):
    exc = error(write(cfg, MINIMAL.replace("[reports.nightly]", f'[reports."{name}"]')))
    assert exc.message == f"{cfg / 'research.toml'}: report {name!r}: bad report name"


@pytest.mark.parametrize("name", ["a", "x" * 48, "Nightly_2.v-1"])
def test_good_report_names(cfg, name):
    path = write(cfg, MINIMAL.replace("[reports.nightly]", f'[reports."{name}"]'))
    assert list(load_reports(str(path)).reports) == [name]


def test_an_unquoted_dotted_name_is_caught_with_the_fix(cfg):
    exc = error(write(cfg, MINIMAL.replace("[reports.nightly]", "[reports.nightly.v2]")))
    assert exc.message == f"{cfg / 'research.toml'}: report 'nightly': unknown field 'v2' (a table)"
    assert exc.hint == 'a report name with a dot needs quotes: [reports."nightly.v2"]'


def test_a_report_that_is_not_a_table(cfg):
    exc = error(write(cfg, "[reports]\nnightly = 3\n"))
    assert exc.message == f"{cfg / 'research.toml'}: report 'nightly': must be a table"



def test_the_message_for_a_typo_in_the_default_file():
    write(Path.cwd(), MINIMAL + 'schedul = "0 7 * * *"\n')
    exc = error(Path("research.toml"))
    assert exc.message == "research.toml: report 'nightly': unknown field 'schedul'"
    assert exc.one_line().startswith("research.toml: report 'nightly': unknown field 'schedul'; did you mean")
