"""The listening socket and uvicorn's logging for `speedy serve`.

The socket is bound before the model loads, so that a port in use is one line and exit 2 at once, not a
load, a warm-up and uvicorn's own error later. uvicorn's access log goes to stderr with its other lines:
stdout is kept for --json objects (README: "every command prints logs on stderr").
"""

from __future__ import annotations

import copy
import errno
import logging
import socket
from typing import Any

from speedy.errors import InputError, OutputError


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), as uvicorn would bind it (SO_REUSEADDR).

    InputError (exit 2) when the port is in use or the address is not this machine's; OutputError
    (exit 4) for other refusals (e.g. a port below 1024 without the right).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise InputError(f"--host {host}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} on {host} is already in use; choose another with --port") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise InputError(f"--host {host} is not an address of this machine") from None
        raise OutputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging config with the access log moved from stdout to stderr."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for handler in config.get("handlers", {}).values():
        if handler.get("stream") == "ext://sys.stdout":
            handler["stream"] = "ext://sys.stderr"
    return config


def uvicorn_log_level() -> str:
    """uvicorn's level from the CLI's (-q: warnings only, --debug: debug, else info)."""
    return logging.getLevelName(max(logging.getLogger().getEffectiveLevel(), logging.DEBUG)).lower()
