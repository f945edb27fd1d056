"""The prompt templates every model step renders (Jinja2, one file per task).

Each template has a ``system`` and a ``user`` block. The rendered text is part of the step key, so
editing a template re-runs exactly the steps whose prompt changed. ``--prompts DIR`` overrides any of
these files by name.
"""

from pathlib import Path

TEMPLATE_DIR = Path(__file__).parent
