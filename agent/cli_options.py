"""The options several ``research`` commands share, declared once (typer reads them from annotations)."""

from __future__ import annotations

from typing import Optional

import typer
from typing_extensions import Annotated

CacheDir = Annotated[Optional[str], typer.Option("--cache-dir", metavar="DIR", help="Cache directory [default: $RESEARCH_CACHE_DIR or ./cache]", show_default=False)]
JsonOut = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
