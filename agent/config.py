"""Where things live and which settings apply, resolved once at the edge.

Explicit arguments win, then environment variables (a ``.env`` file in the working directory is read
into the environment without overriding it), then defaults. API keys are read here only to be handed to
SDK clients; they are never stored in :class:`Settings`' JSON form.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

DEFAULT_CACHE_DIR = "cache"
DEFAULT_REPORT_DIR = "reports"
_dotenv_loaded = False


def load_dotenv_once() -> None:
    """Read ``./.env`` into the environment (existing variables win). Safe to call often."""
    global _dotenv_loaded
    if _dotenv_loaded:
        return
    _dotenv_loaded = True
    path = Path.cwd() / ".env"
    if path.is_file():
        from dotenv import load_dotenv

        load_dotenv(path, override=False)


def env(name: str, default: str | None = None) -> str | None:
    """An environment variable after ``.env`` is loaded; empty counts as unset."""
    load_dotenv_once()
    value = os.environ.get(name)
    return value if value else default


def resolve_cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``--cache-dir``, else ``RESEARCH_CACHE_DIR``, else ``./cache``."""
    return Path(explicit or env("RESEARCH_CACHE_DIR") or DEFAULT_CACHE_DIR)


def resolve_store(explicit: str | os.PathLike | None = None) -> str:
    """Where results and the journal live: ``--store``/``--cache-dir``, else ``RESEARCH_STORE`` (a
    ``postgresql://`` URL or a directory), else the cache directory. ``agent.storage`` reads it."""
    if explicit:
        return os.fspath(explicit)
    return env("RESEARCH_STORE") or str(resolve_cache_dir())


def parse_duration(text: str) -> float:
    """``30s``, ``30m``, ``12h``, ``7d`` or ``2w`` to seconds; raises ``ValueError`` on anything else.

    ``float`` reads ``nan``, ``inf`` and ``1e400`` (as infinity) too, and a huge number of weeks
    overflows to infinity: none of those is a duration.
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units:
        raise ValueError(text)
    seconds = float(text[:-1]) * units[text[-1]]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(text)
    return seconds


_Number = TypeVar("_Number", int, float)


def env_number(name: str, cast: Callable[[str], _Number] = float, default: _Number | None = None,
               minimum: float | None = None) -> _Number | None:
    """The number in variable ``name`` read with ``cast`` (``int`` or ``float``), else ``default``.

    A value that is not a finite number, or is below ``minimum``, is a
    :class:`~agent.errors.UsageError` naming the variable, so a typo in the environment ends as one
    line at the edge rather than as a ``ValueError`` deep in a run.
    """
    raw = env(name)
    if raw is None:
        return default
    try:
        value = cast(raw)
        finite = math.isfinite(value)
    except (ValueError, TypeError, OverflowError):
        finite, value = False, None
    from agent.errors import UsageError

    kind = "a whole number" if cast is int else "a number"
    if not finite:
        raise UsageError(f"{name}={raw!r} is not {kind}", hint=f"set {name} to {kind} or unset it")
    if minimum is not None and value < minimum:
        raise UsageError(f"{name}={raw!r} is below {minimum:g}",
                         hint=f"set {name} to {kind} of at least {minimum:g} or unset it")
    return value


def env_numbers(spec: tuple[tuple[str, str, type], ...]) -> dict[str, object]:
    """``{field: cast(value)}`` for each ``(field, VARIABLE, cast)`` whose variable is set.

    Every one of these settings is a count, a size or a duration, so a value that is not a finite
    number, or is negative, is a :class:`~agent.errors.UsageError` naming the variable.
    """
    values: dict[str, object] = {}
    for field, name, cast in spec:
        value = env_number(name, cast, minimum=0)
        if value is not None:
            values[field] = value
    return values


@dataclass(frozen=True)
class Limits:
    """How hard the project may push providers and sites. None of this is ever part of a key."""

    concurrency: int = 4
    timeout_s: float = 120.0
    max_retries: int = 4
    retry_cap_s: float = 60.0
    rpm: float | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> "Limits":
        values = env_numbers((
            ("concurrency", "RESEARCH_CONCURRENCY", int),
            ("timeout_s", "RESEARCH_TIMEOUT", float),
            ("max_retries", "RESEARCH_MAX_RETRIES", int),
            ("retry_cap_s", "RESEARCH_RETRY_CAP", float),
            ("rpm", "RESEARCH_RPM", float),
        ))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
