"""The RESP front's side of MONITOR: the lines of the log actor's notices, and its own commands.

Design:
- MONITOR is forwarded to the log actor (node/log/monitor.py), which registers the client in
  order with its commands and answers +OK; the connection is noted here when it leaves, so the
  lines of the commands that follow the +OK find it.
- Each ``Monitor`` notice becomes Redis's lines, ``+<unix time> [<db> <addr>] "arg" ...``, with
  ``lua`` as the address of a script's commands and ``zeromq`` for another front's clients,
  arguments quoted as Redis's sdscatrepr does. A line joins the connection's reply order and is
  bounded as a subscriber's deliveries are (node/fronts/resp_pubsub.py's limits).
- The commands this front answers itself (connection commands, an EXEC refused with EXECABORT)
  are fed here, to this front's monitors only, with AUTH's arguments and HELLO's AUTH pair
  redacted as Redis does.
- RESET or QUIT ends monitoring: QUIT closes (the log actor forgets the client), RESET stops
  the lines here; the log actor's registration then lasts until the connection closes.
"""
from __future__ import annotations

import time


__all__ = ["MonitorFront", "monitor_line"]

_LUA, _OTHER = -2, -1
_ESCAPES = {0x5C: b"\\\\", 0x22: b'\\"', 0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t", 0x07: b"\\a",
            0x08: b"\\b"}
_REPR = [(_ESCAPES.get(i) or (bytes([i]) if 0x20 <= i < 0x7F else b"\\x%02x" % i)) for i in range(256)]
_REDACTED = b"(redacted)"


def _quote(arg: bytes) -> bytes:
    if arg.isalnum():  # the common case: nothing to escape
        return b'"' + arg + b'"'
    return b'"' + b"".join(_REPR[c] for c in arg) + b'"'


def monitor_line(when: float, db: int, addr: str, argv: list) -> bytes:
    """One MONITOR line, as Redis writes it (replicationFeedMonitors)."""
    return (b"+%.6f [%d %s] " % (when, db, addr.encode()) + b" ".join(_quote(a) for a in argv)
            + b"\r\n")


def _redact(argv: list[bytes]) -> list[bytes]:
    name = argv[0].upper()
    if name == b"AUTH":
        return [argv[0], *([_REDACTED] * (len(argv) - 1))]
    if name == b"HELLO":
        out = list(argv)
        for i in range(1, len(argv)):
            if argv[i].upper() == b"AUTH":
                out[i + 1:i + 3] = [_REDACTED] * len(out[i + 1:i + 3])
        return out
    return argv


class MonitorFront:
    """Mixin of ``RespFront``."""

    def _monitor_init(self) -> None:
        self.monitoring: dict[int, object] = {}  # client key -> Conn, after its MONITOR left
        # Keys RESET out of monitoring here, still registered in the log actor until they close
        # (a Forget before would drop the work they queued): at most one per connection.
        self.monitor_reset: set[int] = set()
        self.monitor_addrs: dict[int, str] = {}  # client key -> address (``_monitor_addr``)
        self.stats["monitor_lines_sent"] = 0
        self.link.on_monitor = self._on_monitor

    def _monitor_forwarded(self, conn) -> None:
        self.monitoring[conn.key] = conn

    def _on_monitor(self, msg) -> None:
        conns = [c for c in map(self.monitoring.get, msg.clients) if c is not None and not c.closed]
        if not conns:
            return
        addrs = self.monitor_addrs
        lines = []
        for when, db, source, argv in msg.entries:
            if source == _LUA:
                addr = "lua"
            elif source == _OTHER:
                addr = "zeromq"
            else:
                addr = addrs.get(source)
                if addr is None:
                    addr = self._monitor_addr(source)
            lines.append(monitor_line(when, db, addr, argv))
        self._monitor_write(conns, b"".join(lines), len(lines))

    def _monitor_addr(self, key: int) -> str:
        """A client's address, from a map of every connection remade when one is missing (once
        per new client, O(connections)): the front keeps its connections by fd."""
        self.monitor_addrs = {c.key: c.session.addr for c in self.conns.values()}
        return self.monitor_addrs.get(key, "?")

    def _monitor_local(self, conn, argv: list[bytes]) -> None:
        """A command answered here, fed to this front's monitors."""
        line = monitor_line(time.time(), conn.session.db, conn.session.addr, _redact(argv))
        self._monitor_write([c for c in self.monitoring.values() if not c.closed], line, 1)

    def _monitor_write(self, conns: list, data: bytes, count: int) -> None:
        for conn in conns:
            self.stats["monitor_lines_sent"] += count
            self._push_out(conn, data)  # node/fronts/resp_pubsub.py

    def _monitor_here(self, conn, name: str, argv: list[bytes], gate: bytes | None,
                      error: bytes | None) -> None:
        """After a command answered here: its line, unless it was refused before it ran (as
        Redis feeds only what ran); RESET ends this connection's monitoring."""
        if name == "RESET" and self.monitoring.pop(conn.key, None) is not None:
            self.monitor_reset.add(conn.key)
        if gate is None and error is None and name != "QUIT":
            self._monitor_local(conn, argv)

    def _monitor_aborted(self, conn) -> None:
        """An EXEC answered EXECABORT here: Redis shows the transaction's MULTI and EXEC."""
        if self.monitoring:
            self._monitor_local(conn, [b"multi"])
            self._monitor_local(conn, [b"exec"])

    def _monitor_log_lost(self, reason: str, in_flight: list, unsent: list) -> None:
        """The log actor died with its registry: close the monitors too, as the subscribers
        (they would hear nothing more)."""
        self._pubsub_log_lost(reason, in_flight, unsent)
        for conn in list(self.monitoring.values()):
            self._close(conn)
        self.monitor_reset.clear()

    def _monitor_closed(self, conn) -> None:
        key = conn.key
        if self.monitoring.pop(key, None) is not None or key in self.monitor_reset:
            self.monitor_reset.discard(key)
            self.link.send_forget(key)
