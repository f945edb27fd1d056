"""``research ui``: serve the web view of runs, scheduled reports and waits (``agent/ui``).

The web framework is an optional extra and is imported only when this command runs, so the rest of
the CLI starts without it. Like the rest of the CLI this is an edge: what stops it from serving (no
extra, another address without a token, a port in use, a store it cannot read) is one line and exit 2.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from agent.cli_options import CacheDir, Debug, StoreUrl, store_location

Port = Annotated[int, typer.Option("--port", metavar="PORT", min=0, max=65535, help="Port to listen on (0 picks a free one).")]
Host = Annotated[str, typer.Option("--host", metavar="HOST", help="Address to listen on; any but loopback needs RESEARCH_UI_TOKEN.")]
Config = Annotated[Optional[str], typer.Option("--config", metavar="FILE", help="The reports file [default: $RESEARCH_CONFIG or ./research.toml]", show_default=False)]

INSTALL = "pip install 'durable-research[ui]'"
#: The shortest token accepted for listening beyond loopback.
MIN_TOKEN = 16


def ui(
    port: Port = 8765,
    host: Host = "127.0.0.1",
    cache_dir: CacheDir = None,
    store: StoreUrl = None,
    config: Config = None,
    debug: Debug = False,
) -> None:
    """Serve a web view of runs, scheduled reports and waits for approval (needs the ui extra)."""
    from agent.cli import _edge

    with _edge(debug):
        serve(host=host, port=port, store=store_location(store, cache_dir), config=config)


def _framework() -> Any:
    """The web app's module, or a one-line :class:`UsageError` naming the extra to install."""
    from agent.errors import UsageError

    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
        try:
            import python_multipart  # noqa: F401
        except ImportError:
            import multipart  # noqa: F401  (python-multipart before 0.0.13)
        from agent.ui import app
    except ImportError as exc:
        raise UsageError(f"research ui needs its web extra (starlette, uvicorn, python-multipart), which is not "
                         f"installed ({exc})", hint=f"install it with: {INSTALL}") from None
    return app


def _listen(host: str, port: int) -> Any:
    """A bound socket, so a port in use is one line here rather than a traceback in the server."""
    import socket

    from agent.errors import UsageError

    address = host.strip("[]")
    try:
        family = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         hint="pick another --port, or stop what is using it") from None
    return sock


def serve(*, host: str, port: int, store: str | None, config: str | None) -> None:
    """Check what must hold before serving (the address, the extra, the port, the store), then serve
    until Ctrl-C or SIGTERM."""
    import sys

    from agent.config import env
    from agent.errors import UsageError
    from agent.runs import Workspace
    from agent.ui import is_loopback

    token = env("RESEARCH_UI_TOKEN") or None
    loopback = is_loopback(host)
    if not loopback and not token:
        raise UsageError(f"refusing to listen on {host} without a token: anyone who can reach it could read runs and "
                         f"approve them", hint="set RESEARCH_UI_TOKEN to a long random value, or listen on 127.0.0.1")
    if not loopback and len(token) < MIN_TOKEN:
        raise UsageError(f"refusing to listen on {host}: RESEARCH_UI_TOKEN is shorter than {MIN_TOKEN} characters",
                         hint="use a long random value, e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(24))'")
    web = _framework()
    import uvicorn

    sock = _listen(host, port)
    port = sock.getsockname()[1]
    settings = web.Settings(store=store, config=config, token=token, loopback=loopback, port=port)
    ui = web.UI(settings)
    try:
        Workspace.for_reading(store).close()  # a store it cannot read fails here, in one line
    except BaseException:
        sock.close()
        raise
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    how = " (open it with ?token=<RESEARCH_UI_TOKEN>)" if token else ""
    sys.stdout.write(f"research ui: serving {ui.store_label()} at http://{shown}:{port}/{how}; Ctrl-C to stop\n")
    sys.stdout.flush()
    server = uvicorn.Server(uvicorn.Config(web.create_app(ui), log_level="warning", access_log=False,
                                           server_header=False, proxy_headers=False, lifespan="off",
                                           timeout_graceful_shutdown=3))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it stopped for, after stopping cleanly
        pass
    finally:
        sock.close()
    if not server.started:
        raise UsageError(f"research ui could not start on {host}:{port}", hint="rerun with --debug")
    sys.stdout.write("research ui: stopped\n")
