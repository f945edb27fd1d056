"""Rendering prompt templates: the packaged ``prompts/`` files, overridable by ``--prompts DIR``.

A template has a ``system`` and a ``user`` block, may have a ``max_tokens`` block (its output limit:
a 200-word summary needs far fewer tokens than a report), and may have an ``offline`` block naming which of
the offline model's generic operations answers it (``extract``, ``findings``, ``answer``, ``queries``,
``compare``: see :mod:`agent.providers.local`). Hosted models never see that block.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import UsageError


@dataclass(frozen=True)
class Rendered:
    system: str
    user: str
    offline: str | None = None
    #: The template's output limit (its ``max_tokens`` block), if it sets one.
    max_tokens: int | None = None


class Prompts:
    """Loads ``NAME.j2`` from an override directory first, then from the packaged templates."""

    def __init__(self, override_dir: str | Path | None = None, *, pipeline_dir: str | Path | None = None) -> None:
        import jinja2

        from prompts import TEMPLATE_DIR

        # A pipeline from another package brings its templates; the packaged ones come after them.
        dirs = ([str(pipeline_dir)] if pipeline_dir else []) + [str(TEMPLATE_DIR)]
        if override_dir:
            override = Path(override_dir)
            if not override.is_dir():
                raise UsageError(f"--prompts {override_dir} is not a directory",
                                 hint="pass a directory holding .j2 templates to override")
            dirs.insert(0, str(override))
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(dirs), undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False, autoescape=False,
            # A run reads each template once: it is not looked at on disk again for every prompt.
            auto_reload=False,
        )
        self._digests: dict[str, str] = {}

    def digest(self, name: str) -> str:
        """A hash of template ``name``'s source and of every template it extends, includes or imports, as
        this run finds them (an override directory's first): what its rendered text can depend on
        besides the variables it is given."""
        import jinja2
        from jinja2 import meta

        from agent.keys import content_hash

        found = self._digests.get(name)
        if found is not None:
            return found
        sources: dict[str, str] = {}
        todo = [f"{name}.j2"]
        try:
            while todo:
                template = todo.pop()
                if template in sources:
                    continue
                sources[template] = self._env.loader.get_source(self._env, template)[0]
                todo.extend(t for t in meta.find_referenced_templates(self._env.parse(sources[template]))
                            if isinstance(t, str))
        except jinja2.TemplateNotFound as exc:
            raise UsageError(f"no prompt template {exc.name}", hint="restore it or fix --prompts") from exc
        except jinja2.TemplateError as exc:
            raise UsageError(f"prompt template {name}.j2 is broken: {exc}", hint="fix the template") from exc
        found = self._digests[name] = content_hash(sources)
        return found

    def render(self, name: str, **variables: Any) -> tuple[str, str]:
        """``(system, user)`` text of template ``name`` rendered with ``variables``."""
        rendered = self.render_template(name, **variables)
        return rendered.system, rendered.user

    def render_template(self, name: str, **variables: Any) -> Rendered:
        """Template ``name`` rendered with ``variables``: its system and user text, and its offline operation."""
        import jinja2

        try:
            template = self._env.get_template(f"{name}.j2")
            context = template.new_context(variables)
            parts = {block: "".join(template.blocks[block](context)).strip() for block in ("system", "user")}
            if "offline" in template.blocks:
                parts["offline"] = "".join(template.blocks["offline"](context)).strip() or None
            limit = None
            if "max_tokens" in template.blocks:
                raw = "".join(template.blocks["max_tokens"](context)).strip()
                if not raw.isdigit() or not 16 <= int(raw) <= 200_000:
                    raise UsageError(f"prompt template {name}.j2: max_tokens block {raw!r} is not a token count",
                                     hint="write a whole number of output tokens, e.g. {% block max_tokens %}800{% endblock %}")
                limit = int(raw)
        except jinja2.TemplateNotFound as exc:
            raise UsageError(f"no prompt template {name}.j2", hint="restore it or fix --prompts") from exc
        except KeyError as exc:
            raise UsageError(f"prompt template {name}.j2 lacks a {exc.args[0]!r} block",
                             hint="give it {% block system %} and {% block user %}") from exc
        except jinja2.TemplateError as exc:
            raise UsageError(f"prompt template {name}.j2 is broken: {exc}", hint="fix the template") from exc
        return Rendered(parts["system"], parts["user"], parts.get("offline"), limit)
