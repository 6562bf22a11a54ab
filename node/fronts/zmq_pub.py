"""The ZeroMQ front's PUB socket (``--pub-bind``): every PUBLISH, for native SUB sockets.

Design:
- Off by default. With ``--pub-bind ENDPOINT`` the log actor sends the ZeroMQ front a
  ``Deliver`` with no clients for every PUBLISH (keyspace notifications included), and this
  socket publishes it as a two-frame message ``[channel, message]``: a SUB socket's prefix
  filter then works on the channel (``setsockopt(SUBSCRIBE, b"news")`` takes ``news`` and
  ``newsroom``; ``b""`` takes everything). Pattern subscriptions are the client's own:
  subscribe to the longest literal prefix and match the rest (docs/protocol.md).
- PUBLISH's reply does not count these subscribers: a PUB socket does not know them at the
  moment of the PUBLISH, and a count made later would not be Redis's.
- Bounded as ZeroMQ bounds a PUB: past ``PUB_SNDHWM`` messages queued for one slow SUB, the
  messages for that SUB are dropped (never blocking the front nor the log actor).
- Reachability as ``--bind``: loopback TCP, ipc or inproc, unless CURVE is configured (then the
  same server key and allowed clients as the ROUTER) or ``--insecure-bind`` is given.
"""
from __future__ import annotations

import zmq

from aofnode.fronts import curve

__all__ = ["PubSocket", "pub_config_error", "PUB_SNDHWM"]

PUB_SNDHWM = 10_000


def pub_config_error(config) -> str | None:
    """Why ``serve`` must not start with this ``--pub-bind`` (one line), or None."""
    endpoint = config.pub_bind
    if not endpoint or curve.curve_enabled(config) or config.insecure_bind:
        return None
    if not curve.is_local_endpoint(endpoint):
        return (f"refusing to bind --pub-bind {endpoint} without CURVE: anyone who reaches it "
                "could read every message; use --curve-secret-key and --curve-allow, or --insecure-bind")
    return None


class PubSocket:
    def __init__(self, ctx: zmq.Context, config, log) -> None:
        sock = self.sock = ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, PUB_SNDHWM)
        if curve.curve_enabled(config):  # the ROUTER's ZAP handler answers for this one too
            _public, secret = curve._load_server_key(config.curve_secret_key)
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
            sock.setsockopt(zmq.ZAP_DOMAIN, curve.DOMAIN)
            sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        sock.bind(config.pub_bind)
        self.published = 0
        log.info("pub_socket_bound", bind=config.pub_bind)

    def send(self, msg) -> None:
        """Publish one ``Deliver`` (a PUB never blocks: a full SUB pipe drops it)."""
        try:
            self.sock.send_multipart([msg.channel, msg.message], flags=zmq.NOBLOCK)
            self.published += 1
        except zmq.Again:
            pass

    def close(self) -> None:
        self.sock.close(linger=0)
