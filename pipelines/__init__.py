"""Pipelines written on the ``agent`` API: they speak the project's types, never an SDK.

A pipeline is found by name. The built-ins are ``research`` (:mod:`pipelines.research`) and
``report`` (:mod:`pipelines.scheduled`, the scheduled report that says what changed); a third-party
package adds one by declaring an entry point in the ``durable_research.pipelines`` group that names a
:class:`~pipelines.base.Pipeline`. Entry points are read only when a name is not built in, so
startup never pays for them. The journal records each run's pipeline, and ``resume`` finds it here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from agent.errors import UsageError

if TYPE_CHECKING:
    from pipelines.base import Pipeline

ENTRY_POINT_GROUP = "durable_research.pipelines"
BUILTIN = {"research": "pipelines.research", "report": "pipelines.scheduled"}


def get_pipeline(name: str) -> "Pipeline":
    """The pipeline called ``name``: a built-in, else one a package declares as an entry point."""
    module = BUILTIN.get(name)
    if module is not None:
        return importlib.import_module(module).PIPELINE
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            pipeline = entry.load()
            if getattr(pipeline, "name", None) != name:
                raise UsageError(f"the entry point for pipeline {name!r} ({entry.value}) is not a Pipeline named {name!r}",
                                 hint="fix or uninstall the package that declares it")
            return pipeline
    known = sorted(set(BUILTIN) | {e.name for e in entry_points(group=ENTRY_POINT_GROUP)})
    raise UsageError(f"no pipeline named {name!r} is installed", hint=f"installed pipelines: {', '.join(known)}")
