"""Model providers, named by ``"provider:model"`` strings and imported only when used.

``parse_model_id`` is the one place model ids are read. An adapter's module loads when a provider of
its is first made, and its vendor SDK later still, with the first call that is really paid: so
``research --help``, runs on the offline model and fully replayed runs never import an SDK.

A third-party package adds a provider by declaring an entry point in the ``durable_research.providers``
group, named as the provider and naming a :class:`Provider` subclass of that ``name``::

    [project.entry-points."durable_research.providers"]
    myplug = "myplug_research:MyProvider"

Entry points are read only for a name that is not built in, so built-in models never pay for them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
import importlib.util
from typing import TYPE_CHECKING, NamedTuple

from agent.config import Limits
from agent.errors import UsageError
from agent.providers.base import ModelSettings, Provider

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

DEFAULT_MODEL = "local:extractive"
ENTRY_POINT_GROUP = "durable_research.providers"


class _Builtin(NamedTuple):
    module: str
    cls: str
    #: The SDK's import name, checked for (not imported) when a provider is made.
    sdk: str | None = None
    #: What to ``pip install`` when it is missing.
    package: str | None = None


_REGISTRY = {
    "local": _Builtin("agent.providers.local", "LocalProvider"),
    "openai": _Builtin("agent.providers.openai", "OpenAIProvider", "openai", "openai"),
    "openai-compatible": _Builtin("agent.providers.openai", "OpenAICompatibleProvider", "openai", "openai"),
    "ollama": _Builtin("agent.providers.openai", "OllamaProvider", "openai", "openai"),
    "anthropic": _Builtin("agent.providers.anthropic", "AnthropicProvider", "anthropic", "anthropic"),
    "gemini": _Builtin("agent.providers.gemini", "GeminiProvider", "google.genai", "google-genai"),
}

PROVIDER_NAMES = tuple(sorted(_REGISTRY))


def _plugins() -> list["EntryPoint"]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def _plugin(name: str) -> "EntryPoint | None":
    """The entry point declaring provider ``name``, if an installed package declares one."""
    return next((entry for entry in _plugins() if entry.name.lower() == name), None)


def parse_model_id(model_id: str) -> tuple[str, str]:
    """``"openai:gpt-4o-mini"`` -> ``("openai", "gpt-4o-mini")``; raises :class:`UsageError` if malformed."""
    provider, sep, model = model_id.strip().partition(":")
    if not sep or not provider or not model:
        raise UsageError(f"model {model_id!r} is not of the form PROVIDER:MODEL",
                         hint=f"for example --model {DEFAULT_MODEL} or --model openai:gpt-4o-mini")
    provider = provider.lower()
    if provider not in _REGISTRY and _plugin(provider) is None:
        known = sorted(set(PROVIDER_NAMES) | {entry.name.lower() for entry in _plugins()})
        raise UsageError(f"unknown provider {provider!r} in --model {model_id}",
                         hint=f"use one of: {', '.join(known)}")
    return provider, model


def _sdk_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None  # finds it without importing it
    except (ImportError, ValueError):  # a parent package missing, or a broken half-install
        return False


#: Models given with explicit settings in Python (``Research(models=[{...}])``); they win over the file.
_given: dict[str, "ConfiguredModel"] = {}


def register_model(model: "ConfiguredModel") -> None:
    """Make ``model`` known by its name in this process (its settings, its key, never written anywhere)."""
    _given[model.name] = model


def configured_model(model_id: str) -> "ConfiguredModel | None":
    """The model named ``model_id`` in the ``[models]`` tables of ``research.toml``, if there is one.

    Read only for a name that is not ``PROVIDER:MODEL`` of a known provider, so plain runs never read
    the file.
    """
    name = model_id.strip()
    if name in _given:
        return _given[name]
    provider = name.partition(":")[0].lower()
    if ":" in name and (provider in _REGISTRY or _plugin(provider) is not None):
        return None
    from agent.reportfile import load_models

    return load_models().get(name)


def get_provider(model_id: str, *, limits: Limits | None = None, settings: ModelSettings | None = None) -> Provider:
    """A provider instance for ``model_id`` (``PROVIDER:MODEL``, or a name from ``[models]`` in
    ``research.toml``). Its vendor SDK must be installed, but is not imported yet."""
    named = configured_model(model_id) if settings is None else None
    if named is not None:
        model_id, settings = named.model_id, named.settings
        if settings.prices:
            from agent.pricing import register

            register(named.provider, named.model, settings.prices)
    provider, model = parse_model_id(model_id)
    builtin = _REGISTRY.get(provider)
    if builtin is None:
        return _plugin_class(provider)(model, limits=limits, settings=settings)
    if builtin.sdk is not None and not _sdk_installed(builtin.sdk):
        raise UsageError(f"the {provider} provider needs the {builtin.package} package, which is not installed",
                         hint=f"pip install {builtin.package}")
    try:
        module = importlib.import_module(builtin.module)
    except ImportError as exc:
        raise UsageError(f"the {provider} provider could not be loaded ({exc})",
                         hint=f"pip install --force-reinstall {builtin.package or 'durable-research'}") from exc
    return getattr(module, builtin.cls)(model, limits=limits, settings=settings)


def _plugin_class(provider: str) -> type[Provider]:
    entry = _plugin(provider)
    assert entry is not None  # parse_model_id found it
    hint = "fix or uninstall the package that declares it"
    try:
        cls = entry.load()
    except Exception as exc:
        raise UsageError(f"the provider plugin {provider!r} ({entry.value}) failed to load: "
                         f"{type(exc).__name__}: {exc}", hint=hint) from exc
    if not (isinstance(cls, type) and issubclass(cls, Provider)) or getattr(cls, "name", None) != provider:
        raise UsageError(f"the entry point for provider {provider!r} ({entry.value}) is not a Provider "
                         f"subclass named {provider!r}", hint=hint)
    return cls


@dataclass(frozen=True)
class ConfiguredModel:
    """A model defined by name in ``research.toml``: which provider serves it, and its settings."""

    name: str
    provider: str
    model: str
    settings: ModelSettings

    @property
    def model_id(self) -> str:
        return f"{self.provider}:{self.model}"


__all__ = ["DEFAULT_MODEL", "ENTRY_POINT_GROUP", "PROVIDER_NAMES", "ConfiguredModel", "ModelSettings", "Provider",
           "configured_model", "get_provider", "parse_model_id", "register_model"]
