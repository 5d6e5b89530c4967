"""``midway ui``: serve the dashboard. Importable without the ``ui`` extra installed."""

from __future__ import annotations

import importlib.util
import secrets
import socket

import click

from midway._model.owner import hostname
from midway._model.redaction import redact_url
from midway.cli.options import store_option
from midway.errors import ConfigError, StoreNotFound
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


def choose_token(host: str, token: str | None, no_token: bool) -> str | None:
    """The dashboard's token: the one given, else a new random one; None for --no-token,
    which only a loopback bind may have."""
    from midway.web.security import is_loopback

    if token is not None and not token.strip():
        raise ConfigError("--token (or MIDWAY_UI_TOKEN) is empty; give a token, or leave it out")
    if no_token and token is not None:
        raise ConfigError(
            "--no-token and a token (--token or MIDWAY_UI_TOKEN) contradict each other: "
            "drop one of them"
        )
    if no_token and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve the dashboard on {host} without a token: anyone who can reach "
            "this machine could read every job's state, and reset jobs or resolve their items. "
            "Drop --no-token (a token is made for you, or set MIDWAY_UI_TOKEN), or keep the "
            "default --host 127.0.0.1 and reach it through an SSH tunnel "
            "(ssh -L 8737:127.0.0.1:8737 this-host)."
        )
    if no_token:
        return None
    return token if token is not None else secrets.token_urlsafe(32)


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
    help="Address to listen on (anything but loopback always has a token).",
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
        "The token every request must carry (default: $MIDWAY_UI_TOKEN, which, unlike a "
        "command-line argument, other users cannot see in ps; else a new random one)."
    ),
)
@click.option(
    "--no-token",
    is_flag=True,
    help="No token: every user of this machine may use the dashboard (loopback only).",
)
@store_option
def ui(host: str, port: int, token: str | None, no_token: bool, store_url: str | None) -> None:
    """Serve a dashboard of the store's jobs: live progress, each job's details,
    throughput chart and report; retry failed items, resolve in-doubt ones, add notes, reset.

    It listens on 127.0.0.1 unless told otherwise, and needs a token, as Jupyter does: a
    new random one at each start unless --token or MIDWAY_UI_TOKEN gives one. Open the
    link it prints (/?token=...) once to sign the browser in; scripts send
    'Authorization: Bearer ...'. --no-token lets every user of this machine in.
    Needs the ui extra: pip install 'midway[ui]'.

    \b
    Example:
      midway ui
      midway ui --port 9000 --store sqlite:///jobs.db
      MIDWAY_UI_TOKEN=$(openssl rand -hex 16) midway ui --host 0.0.0.0
      midway ui --no-token        # a machine of one's own
    """
    require_extra()
    token = choose_token(host, token, no_token)
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
    app = create_app(url, Guard(token=token, port=port, host=host))
    address = _address_for_people(host, port)
    shown = redact_url(url)
    banner = [f"midway ui: serving {address} for the jobs in {shown} (Ctrl-C stops it)"]
    if token is not None:
        banner.append(f"  open {address}?token={token} once to sign in")
    else:
        banner.append("  no token (--no-token): every user of this machine can open it")
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
