"""Research workflows written on the ``agent`` API: they speak the project's types, never an SDK."""
