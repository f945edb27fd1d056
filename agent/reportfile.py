"""The reports file, ``research.toml``: named research reports and when they run.

Each ``[reports.NAME]`` table holds what ``research run`` would take as flags, plus a cron ``schedule``
and a ``timezone``. The whole file is read and checked before anything runs: a scheduled job that fails
at 06:00 over a typo is found only the next morning, so every mistake is a :class:`UsageError` at load
time, one line naming the file, the report and the field. Unknown keys are mistakes too, never ignored.

Relative paths in the file (``files``, ``urls_file``, ``out``) are relative to the directory holding it,
so the file means the same thing whichever directory cron starts in.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent import schedule
from agent.config import DEFAULT_REPORT_DIR, env, parse_duration
from agent.errors import UsageError
from agent.sources.urls import check_url, read_urls_file

DEFAULT_CONFIG = "research.toml"
DEFAULT_MODELS = ("local:extractive",)
FORMATS = ("md", "html", "json")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")
FIELDS = ("question", "files", "urls", "urls_file", "search", "depth", "breadth", "models", "schedule",
          "timezone", "max_age", "formats", "out", "keep", "max_cost", "webhook", "allow_private_hosts",
          "approve", "approve_timeout", "check_with", "batch", "batch_min")
#: Stages a scheduled report can wait before for a person's approval.
APPROVE_STAGES = ("analyze", "report")
_EXAMPLE = ('[reports.nightly]\nquestion = "What changed in EU heat pump subsidies?"\n'
            'files = ["notes/"]\nschedule = "0 6 * * *"')


@dataclass(frozen=True, kw_only=True)
class ReportSpec:
    """One checked ``[reports.NAME]`` table, defaults filled in and paths resolved."""

    name: str
    question: str
    files: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    search: int = 0
    depth: int = 0
    breadth: int = 2
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    schedule: str
    timezone: str = "UTC"
    max_age: float | None = None
    formats: list[str] = field(default_factory=lambda: ["md"])
    out_dir: str = DEFAULT_REPORT_DIR
    keep: int | None = None
    max_cost: float | None = None
    webhook: str | None = None
    allow_private_hosts: bool = False
    approve: list[str] = field(default_factory=list)
    approve_timeout: float | None = None
    check_with: str | None = None
    #: Model calls through the vendors' batch APIs; ``report due`` carries a slot from handing over to report.
    batch: bool = False
    batch_min: int = 1


@dataclass
class ReportsFile:
    """A loaded reports file: where it is and its reports by name, in file order."""

    path: Path
    reports: dict[str, ReportSpec]

    def get(self, name: str) -> ReportSpec:
        try:
            return self.reports[name]
        except KeyError:
            known = ", ".join(self.reports) or "none"
            raise UsageError(f"{self.path}: no report named {name!r}", hint=f"known reports: {known}") from None


def resolve_config_path(explicit: str | None) -> Path:
    """``--config FILE``, else ``RESEARCH_CONFIG``, else ``./research.toml``."""
    return Path(explicit or env("RESEARCH_CONFIG") or DEFAULT_CONFIG).expanduser()


def load_reports(explicit: str | None = None) -> ReportsFile:
    """Read, parse and check the reports file; every problem is a one-line :class:`UsageError`."""
    path = resolve_config_path(explicit)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no reports file: {path}",
                         hint=f"create {path} (or pass --config FILE), for example:\n{_EXAMPLE}") from None
    except OSError as exc:
        raise UsageError(f"cannot read the reports file {path}: {exc.strerror or exc}",
                         hint="--config takes a TOML file") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text", hint="save the reports file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends "(at line N, column M)": keep it, it is where to look.
        raise UsageError(f"{path}: not valid TOML: {exc}", hint="fix the line shown") from None

    for key in data:
        if key not in ("reports", "models"):
            raise UsageError(f"{path}: unknown top-level key {key!r}",
                             hint=f"{_did_you_mean(key, ['reports', 'models'])}the file holds [reports.NAME] and "
                                  "[models.NAME] tables")
    _models(path, data)  # a broken model definition is reported before any report runs
    tables = data.get("reports", {})
    if not isinstance(tables, dict):
        raise UsageError(f"{path}: 'reports' must be a table of [reports.NAME] tables", hint=_example_hint())
    if not tables:
        raise UsageError(f"{path}: no reports defined", hint=_example_hint())
    reports = {name: _Checker(path, name).spec(table) for name, table in tables.items()}
    return ReportsFile(path=path, reports=reports)


def _example_hint() -> str:
    return f"add a [reports.NAME] table, for example:\n{_EXAMPLE}"


def _did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


class _Checker:
    """Checks one report's table; its errors all start ``FILE: report 'NAME':``."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self.base = path.parent

    def fail(self, message: str, hint: str | None = None) -> UsageError:
        return UsageError(f"{self.path}: report {self.name!r}: {message}", hint=hint)

    def spec(self, table: Any) -> ReportSpec:
        if not NAME_PATTERN.match(self.name):
            raise self.fail("bad report name",
                            hint="names are 1-48 letters, digits, '.', '_' or '-', starting with a letter or digit")
        if not isinstance(table, dict):
            raise self.fail("must be a table", hint=f"write it as [reports.{self.name}] with its fields below")
        for key, value in table.items():
            if key not in FIELDS:
                if isinstance(value, dict):
                    # [reports.nightly.v2] is a table inside 'nightly' to TOML, not a report named 'nightly.v2'.
                    raise self.fail(f"unknown field {key!r} (a table)",
                                    hint=f'a report name with a dot needs quotes: [reports."{self.name}.{key}"]')
                raise self.fail(f"unknown field {key!r}",
                                hint=f"{_did_you_mean(key, FIELDS)}known fields: {', '.join(FIELDS)}")
        t = table
        question = self.string(t, "question", required=True).strip()
        if not question:
            raise self.fail("field 'question' is empty", hint="write the research question")
        cron = self.string(t, "schedule", required=True)
        try:
            cron = schedule.check_cron(cron)
        except ValueError as exc:
            raise self.fail(f"field 'schedule': {exc}",
                            hint='use 5 cron fields, e.g. "0 6 * * *" for 06:00 daily') from None
        zone = self.string(t, "timezone", default="UTC")
        try:
            schedule.check_timezone(zone)
        except ValueError:
            raise self.fail(f"field 'timezone': unknown timezone {zone!r}",
                            hint='use an IANA name such as "Europe/Paris" or "UTC"') from None

        files = [self.existing(p) for p in self.strings(t, "files")]
        urls = [self.url(u, "urls") for u in self.strings(t, "urls")]
        if "urls_file" in t:
            urls += self.urls_file(self.string(t, "urls_file"))
        search = self.integer(t, "search", 0, minimum=0)
        if not (files or urls or search):
            raise self.fail("no sources", hint="give files, urls, urls_file or search = N")
        models = self.strings(t, "models", default=list(DEFAULT_MODELS))
        if not models:
            raise self.fail("field 'models' is empty", hint='give at least one, e.g. ["local:extractive"]')

        formats = self.strings(t, "formats", default=["md"])
        for fmt in formats:
            if fmt not in FORMATS:
                raise self.fail(f"field 'formats': unknown format {fmt!r}", hint=f"formats are {', '.join(FORMATS)}")
        if not formats:
            raise self.fail("field 'formats' is empty", hint=f"give one or more of {', '.join(FORMATS)}")
        out = self.string(t, "out", default="").strip()
        if "out" in t and not out:
            raise self.fail("field 'out' is empty", hint='name a directory, e.g. out = "reports"')
        out_dir = str(self.relative(out)) if out else (env("RESEARCH_REPORT_DIR") or DEFAULT_REPORT_DIR)

        return ReportSpec(
            name=self.name, question=question, schedule=cron, timezone=zone, files=files, urls=urls,
            search=search, depth=self.integer(t, "depth", 0, minimum=0),
            breadth=self.integer(t, "breadth", 2, minimum=1), models=models, max_age=self.duration(t),
            formats=list(dict.fromkeys(formats)), out_dir=out_dir,
            keep=self.integer(t, "keep", None, minimum=1), max_cost=self.cost(t), webhook=self.webhook(t),
            allow_private_hosts=self.boolean(t, "allow_private_hosts"), approve=self.stages(t),
            approve_timeout=self.duration(t, "approve_timeout"),
            check_with=self.string(t, "check_with") if "check_with" in t else None,
            batch=self.boolean(t, "batch"), batch_min=self.integer(t, "batch_min", 1, minimum=1),
        )

    # Field types. TOML already typed each value; these only refuse the wrong type, naming the field.

    def string(self, t: dict, key: str, default: str | None = None, required: bool = False) -> str:
        if key not in t:
            if required:
                raise self.fail(f"missing field {key!r}", hint=f"add {key} = \"...\"")
            return default  # type: ignore[return-value]
        value = t[key]
        if not isinstance(value, str):
            raise self.fail(f"field {key!r} must be a string, not {_toml_type(value)}", hint=f'write {key} = "..."')
        return value

    def strings(self, t: dict, key: str, default: list[str] | None = None) -> list[str]:
        if key not in t:
            return list(default or [])
        value = t[key]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(f"field {key!r} must be a list of non-empty strings", hint=f'write {key} = ["..."]')
        return [v.strip() for v in value]

    def integer(self, t: dict, key: str, default: int | None, minimum: int) -> Any:
        if key not in t:
            return default
        value = t[key]
        # bool is an int to Python, never to a user: 'search = true' is a mistake.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"field {key!r} must be an integer, not {_toml_type(value)}",
                            hint=f"write {key} = {max(minimum, 1)}")
        if value < minimum:
            raise self.fail(f"field {key!r} must be at least {minimum}, got {value}")
        return value

    def boolean(self, t: dict, key: str) -> bool:
        value = t.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(f"field {key!r} must be true or false, not {_toml_type(value)}")
        return value

    def stages(self, t: dict) -> list[str]:
        value = t.get("approve", [])
        stages = [value] if isinstance(value, str) else self.strings(t, "approve")
        for stage in stages:
            if stage not in APPROVE_STAGES:
                raise self.fail(f"field 'approve': no stage {stage!r} to wait before",
                                hint=f"use one of: {', '.join(APPROVE_STAGES)}")
        return stages

    def duration(self, t: dict, key: str = "max_age") -> float | None:
        if key not in t:
            return None
        text = self.string(t, key)
        try:
            seconds = parse_duration(text)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):
            raise self.fail(f"field {key!r}: {text!r} is not a duration",
                            hint='use a number and a unit: "30m", "12h", "7d"')
        return seconds

    def cost(self, t: dict) -> float | None:
        if "max_cost" not in t:
            return None
        value = t["max_cost"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"field 'max_cost' must be a number of USD, not {_toml_type(value)}",
                            hint="write max_cost = 1.50")
        if not math.isfinite(value) or value < 0:
            raise self.fail(f"field 'max_cost' must be a finite number >= 0, got {value}")
        return float(value)

    def webhook(self, t: dict) -> str | None:
        if "webhook" not in t:
            return None
        url = self.string(t, "webhook").strip()
        try:
            parts = urlsplit(url)
            ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise self.fail(f"field 'webhook': {url!r} is not an http or https URL", hint="give https://host/path")
        return url

    # Sources.

    def relative(self, text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.base / path

    def existing(self, text: str) -> str:
        path = self.relative(text)
        if not path.exists():
            raise self.fail(f"field 'files': no such file or directory: {path}",
                            hint=f"paths are relative to {self.base}" if not Path(text).is_absolute() else None)
        return str(path)

    def url(self, text: str, key: str) -> str:
        try:
            return check_url(text)
        except UsageError as exc:
            raise self.fail(f"field {key!r}: {exc.message}", hint=exc.hint) from None

    def urls_file(self, text: str) -> list[str]:
        path = self.relative(text)
        try:
            lines = read_urls_file(str(path))
        except UsageError as exc:
            raise self.fail(f"field 'urls_file': {exc.message}",
                            hint="one URL a line; the path is relative to the reports file") from None
        return [self.url(line, "urls_file") for line in lines]


def _toml_type(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
             dict: "a table"}
    return names.get(type(value), type(value).__name__)


MODEL_FIELDS = ("provider", "model", "base_url", "api_key_env", "context_window", "max_output_tokens", "concurrency",
                "input_price", "output_price", "cached_input_price")


def load_models(explicit: str | None = None) -> dict[str, Any]:
    """The models named in the reports file's ``[models.NAME]`` tables (none when there is no file).

    ``[models.local-qwen]`` with ``provider = "openai-compatible"``, ``model``, ``base_url``,
    ``api_key_env``, ``context_window``, ``max_output_tokens``, ``concurrency`` and prices (USD per
    million tokens) lets ``--model local-qwen`` reach a server of its own, beside OpenAI in one run.
    """
    path = resolve_config_path(explicit)
    if not path.is_file() and explicit is None:
        return {}
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read the models in {path}: {exc}", hint="fix the reports file") from None
    return _models(path, data)


def _models(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    tables = data.get("models", {})
    if not isinstance(tables, dict):
        raise UsageError(f"{path}: 'models' must be a table of [models.NAME] tables",
                         hint='[models.local-qwen]\nprovider = "openai-compatible"\nbase_url = "http://localhost:8000/v1"')
    out: dict[str, Any] = {}
    for name, table in tables.items():
        out[name] = model_from_table(name, table, f"{path}: model {name!r}")
    return out


def model_from_table(name: str, table: Any, where: str, *, api_key: bool = False) -> Any:
    """One model's settings, checked (``where`` starts each error): a ``[models.NAME]`` table, or the
    dict given to ``Research(models=[...])``, which alone may carry the ``api_key`` itself."""
    from agent.providers import PROVIDER_NAMES, ConfiguredModel, ModelSettings, parse_model_id

    fields = MODEL_FIELDS + (("api_key",) if api_key else ())
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table", hint=f"write it as [models.{name}]")
    for key in table:
        if key not in fields:
            raise UsageError(f"{where}: unknown field {key!r}",
                             hint=f"{_did_you_mean(key, fields)}known fields: {', '.join(fields)}")
    provider = table.get("provider")
    if not isinstance(provider, str) or not provider:
        raise UsageError(f"{where}: missing field 'provider'", hint=f"one of: {', '.join(PROVIDER_NAMES)}")
    model = table.get("model", name)
    if not isinstance(model, str) or not model:
        raise UsageError(f"{where}: field 'model' must be a string", hint="the model's name on its server")
    try:
        provider, model = parse_model_id(f"{provider}:{model}")
    except UsageError as exc:
        raise UsageError(f"{where}: {exc.message}", hint=exc.hint) from None

    def number(key: str, cast: type, minimum: float) -> Any:
        value = table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (cast is int and not isinstance(value, int)) \
                or not math.isfinite(value) or value < minimum:
            raise UsageError(f"{where}: field {key!r} must be {'a whole number' if cast is int else 'a number'} "
                             f"of at least {minimum:g}", hint=f"got {value!r}")
        return cast(value)

    def text(key: str) -> str | None:
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise UsageError(f"{where}: field {key!r} must be a non-empty string", hint=f"got {value!r}")
        return value

    base_url = text("base_url")
    if base_url is not None:
        check_url(base_url)
    prices = {k[:-len("_price")]: number(k, float, 0) for k in ("input_price", "output_price", "cached_input_price")
              if table.get(k) is not None}
    settings = ModelSettings(alias=name, base_url=base_url, api_key_env=text("api_key_env"),
                             api_key=text("api_key") if api_key else None,
                             context_window=number("context_window", int, 1024),
                             max_output_tokens=number("max_output_tokens", int, 16),
                             concurrency=number("concurrency", int, 1), prices=prices or None)
    return ConfiguredModel(name=name, provider=provider, model=model, settings=settings)
