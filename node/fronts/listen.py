"""The fronts' listening sockets, bound once by the supervisor and inherited by each front.

Design:
- A front that dies gives nothing up: the supervisor binds every client endpoint before it
  starts any actor and keeps the sockets for its whole life, and each front it starts inherits
  its own one (``pass_fds``; its number in ``LISTEN_FD_ENV``). A restarted front finds its port
  held, never free for another local user to take (and be sent what clients send, AUTH
  included). Clients that connect meanwhile wait in the listen backlog.
- The ZeroMQ front adopts the socket with ``ZMQ_USE_FD`` (then binds the same endpoint, which
  libzmq then does not bind again); the RESP front uses it as its listener.
- A bind that fails here is the first bind of the node: ``serve`` exits 5. Endpoints this
  module cannot bind as libzmq would (an interface name, a wildcard port, inproc) are left to
  the front, as before.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import stat

__all__ = ["LISTEN_FD_ENV", "LISTEN_BACKLOG", "zmq_listener", "tcp_listener", "inherited_fd",
           "remove_ipc_file"]

LISTEN_FD_ENV = "AOFNODE_LISTEN_FD"
# libzmq's default ZMQ_BACKLOG; Redis's tcp-backlog is 511 (the RESP front's).
LISTEN_BACKLOG = 100
RESP_BACKLOG = 511


def tcp_listener(host: str, port: int, backlog: int) -> socket.socket:
    """A listening, non-blocking TCP socket on host:port (SO_REUSEADDR, as libzmq and Redis);
    OSError if it cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def _ipc_listener(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        if path.startswith("@"):  # Linux's abstract namespace, as libzmq spells it
            sock.bind("\0" + path[1:])
        else:
            remove_ipc_file(path)  # a stale socket of an earlier run: libzmq removes it too
            sock.bind(path)
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def remove_ipc_file(path: str) -> None:
    """Remove the socket file at ``path`` if there is one (and nothing else)."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def zmq_listener(endpoint: str) -> socket.socket | None:
    """The listening socket a ROUTER bound to ``endpoint`` would have, or None for an endpoint
    left to libzmq. OSError if it cannot be bound."""
    transport, _, address = endpoint.partition("://")
    if transport == "ipc" and address:
        return _ipc_listener(address)
    if transport != "tcp":
        return None
    host, _, port_text = address.rpartition(":")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None  # a wildcard or ephemeral port
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host == "*":
        host = "0.0.0.0"  # libzmq without ZMQ_IPV6
    elif host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None  # an interface or host name: libzmq resolves it its own way
    return tcp_listener(host, int(port_text), LISTEN_BACKLOG)


def inherited_fd() -> int | None:
    """The listening socket the supervisor handed to this front, if any."""
    text = os.environ.pop(LISTEN_FD_ENV, None)
    return int(text) if text else None
