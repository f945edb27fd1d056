"""``research ui``: a local web view of runs, their steps and waits, and scheduled reports.

``app`` holds the HTTP side (routes, the guard every request passes, CSRF); ``views`` reads what the
pages show from the store; ``actions`` approves and rejects waits and continues approved runs in a
background process. Importing this package imports no web framework: ``app`` does, and only
``research ui`` imports ``app``.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) reaches this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
