"""``python -m agent`` is the ``research`` command."""

from agent.cli import main

main()
