"""The ``serve`` command: the runs in some folders as a live, read-only web page."""

import ipaddress
import secrets
import socket
from pathlib import Path

import click
import uvicorn

from ..serve import Watcher, make_app


def _local(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


@click.command()
@click.argument("folders", metavar="DIR...", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; any but this machine's own needs a token.",
)
@click.option("--port", default=8750, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option(
    "--token",
    envvar="CELLRIG_SERVE_TOKEN",
    help="The token a browser must bring (default on a non-local "
    "--host: a new one, printed).  Also read from CELLRIG_SERVE_TOKEN.",
)
@click.option("--title", default="cellrig lab", show_default=True, help="The page's title.")
def serve(folders: tuple[Path, ...], host: str, port: int, token: str | None, title: str) -> None:
    """Serve a live web page of the runs in DIR... (campaign folders, run folders) while they are written.

    \b
    The overview lists every run (trips and failures first, with their reason): cell, protocol,
    state, step, cycle, last voltage, current and temperature, elapsed time.  A run's page plots
    every stream by quantity (the last hours or the whole run), its capacity by cycle and its
    events.  Pages update by themselves.  Read-only: it never writes a run file, opens no
    instrument and never slows a writer.  Listening beyond this machine (--host 0.0.0.0) needs a
    token; put it behind a reverse proxy with TLS for anything but the lab network (docs/serve.md).
    """
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise click.ClickException(f"no such folder: {', '.join(missing)}")
    if token is None and not _local(host):
        token = secrets.token_urlsafe(18)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # connections wait in the backlog until the server takes them: none is refused
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    watcher = Watcher(list(folders)).start()
    shown = "localhost" if _local(host) else (socket.gethostname() if host in ("0.0.0.0", "::") else host)
    url = f"http://{shown}:{sock.getsockname()[1]}/" + (f"?token={token}" if token else "")
    click.echo(f"cellrig serve: {len(watcher.rows())} runs in {', '.join(map(str, folders))} at {url}", err=True)
    server = uvicorn.Server(uvicorn.Config(make_app(watcher, title, token), log_level="warning"))
    try:
        server.run(sockets=[sock])
    finally:
        watcher.stop()
