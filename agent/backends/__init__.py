"""Storage backends other than the local directory (``agent.store`` and ``agent.journal``).

Only ``agent.storage.open_storage`` makes one, from the location it is given.
"""
