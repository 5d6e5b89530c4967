"""``midway ui``: serve the dashboard. Importable without the ``ui`` extra installed."""

from __future__ import annotations

import importlib.util
import socket

import click

from midway.errors import ConfigError, StoreNotFound
from midway.owner import hostname
from midway.redaction import redact_url
from midway.stores import default_url, open_store

EXTRA = ("starlette", "jinja2", "uvicorn")


def require_extra() -> None:
    """Raise ``ConfigError`` naming the install command when the ``ui`` extra is missing."""
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"`midway ui` needs the dashboard's optional packages ({', '.join(missing)} "
            "missing); install them with: pip install 'midway[ui]'"
        )


def check_exposure(host: str, token: str | None) -> None:
    """Refuse a bind that other machines can reach unless a token guards it."""
    from midway.web.security import is_loopback

    if token is not None and not token.strip():
        raise ConfigError("--token (or MIDWAY_UI_TOKEN) is empty; give a token, or leave it out")
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve the dashboard on {host} without a token: anyone who can reach "
            "this machine could read every job's state, and reset jobs or resolve their items. "
            "Pass --token T (or set "
            "MIDWAY_UI_TOKEN), or keep the default --host 127.0.0.1 and reach it through an "
            "SSH tunnel (ssh -L 8737:127.0.0.1:8737 this-host)."
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port), or a ``ConfigError`` saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} is not an address of this machine: {exc}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port "
            "(or --port 0 for any free one)"
        ) from None
    return sock


def _address_for_people(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):
        host = hostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback needs --token.",
)
@click.option(
    "--port",
    default=8737,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--token",
    envvar="MIDWAY_UI_TOKEN",
    default=None,
    help=(
        "Require this token on every request (default: $MIDWAY_UI_TOKEN, which, unlike a "
        "command-line argument, other users cannot see in ps)."
    ),
)
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    envvar="MIDWAY_STORE",
    default=None,
    help="Store URL (default: $MIDWAY_STORE, else sqlite:///.midway/state.db).",
)
def ui(host: str, port: int, token: str | None, store_url: str | None) -> None:
    """Serve a dashboard of the store's jobs: live progress, each job's details,
    throughput chart and report; retry failed items, resolve in-doubt ones, add notes, reset.

    It listens on 127.0.0.1 unless told otherwise; any other address needs a token,
    which people then pass once as /?token=... (or as 'Authorization: Bearer ...').
    Needs the ui extra: pip install 'midway[ui]'.

    \b
    Example:
      midway ui
      midway ui --port 9000 --store sqlite:///jobs.db
      MIDWAY_UI_TOKEN=$(openssl rand -hex 16) midway ui --host 0.0.0.0
    """
    require_extra()
    check_exposure(host, token)
    url = store_url or default_url()
    try:
        open_store(url, create=False).close()
        waiting = False
    except StoreNotFound:
        waiting = True

    import uvicorn

    from midway.web.app import create_app
    from midway.web.security import Guard

    sock = bind(host, port)
    port = sock.getsockname()[1]
    app = create_app(url, Guard(token=token, port=port))
    address = _address_for_people(host, port)
    shown = redact_url(url)
    banner = [f"midway ui: serving {address} for the jobs in {shown} (Ctrl-C stops it)"]
    if token is not None:
        banner.append(f"  open {address}?token={token} once to sign in")
    if waiting:
        banner.append(f"  no store at {shown} yet: jobs appear once one runs")
    click.echo("\n".join(banner))  # one write: a reader sees all of it or none
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    click.echo("midway ui: stopped")
