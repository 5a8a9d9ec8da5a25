"""Listening and serving: the socket is bound before the model loads, so a port in use is reported
at once, in one line, and port 0 (any free port) reports the port it got."""

from __future__ import annotations

import socket

from segtool.errors import UsageError


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv4 or IPv6), or UsageError saying why not."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=128)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def make_server(app, access_log: bool = True):
    """A uvicorn server for the app; run it with `.run(sockets=[listen(...)])`."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="info", access_log=access_log, lifespan="off",
                                         timeout_graceful_shutdown=5))
