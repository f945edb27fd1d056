"""The options several ``research`` commands share, declared once (typer reads them from annotations)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

CacheDir = Annotated[Optional[str], typer.Option("--cache-dir", metavar="DIR", help="Cache directory [default: $RESEARCH_CACHE_DIR or ./cache]", show_default=False)]
StoreUrl = Annotated[Optional[str], typer.Option("--store", metavar="URL", help="A shared store URL (postgresql://user@host/db); default: the cache directory", show_default=False)]
JsonOut = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
Kind = Annotated[Optional[str], typer.Option("--kind", metavar="KIND", help="Only this kind of step: llm, scrape, search, fn, probe (a server's reported context window), check (remembered claim verdicts), memo (the steps each summary took, for a quick replay), or failure (remembered failed page reads).")]


def store_location(store: Optional[str], cache_dir: Optional[str]) -> Optional[str]:
    """Where a command's store is: ``--store URL`` or ``--cache-dir DIR`` (not both); ``None`` lets
    ``agent.storage`` read ``RESEARCH_STORE``, then the cache directory's variable and default."""
    if store and cache_dir:
        from agent.errors import UsageError

        raise UsageError("--store and --cache-dir name two different stores", hint="pass one of them")
    return store or cache_dir
