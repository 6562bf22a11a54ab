"""MULTI/EXEC/DISCARD/WATCH/UNWATCH on the RESP front, with Redis 7.0's replies.

Design:
- The queue is the connection's (``TxQueue`` in ``Session.multi``): between MULTI and EXEC each
  command is checked here (name, arity, NOAUTH, size) and answered +QUEUED, or with its error,
  which makes EXEC answer EXECABORT (as Redis). Nothing reaches the log actor before EXEC.
- EXEC sends the whole block as ONE protocol-2 message whose header says ``"multi": true``
  (and ``"watched": true`` after a WATCH): the log actor runs it in one go, its writes in one
  AOF record (node/log/transactions.py). Its reply is made into EXEC's one array (``ExecSlot``):
  the requests' replies, or a null array (RESP2 ``*-1``, RESP3 ``_``) when a watched key
  changed.
- WATCH and UNWATCH go to the log actor at once, as ordinary messages: the watch needs the
  keyspace as it is then, and lives there under this connection's client key. EXEC, DISCARD,
  UNWATCH and RESET end it; a closed connection that watched sends a Forget.
- Past maxmemory (the log actor says so, ``Stats({"oom": 1})`` before its replies) a command
  queued here gets OOM and EXEC then EXECABORT, as Redis checks at queue time (queueing itself
  takes memory); the log actor checks the block at EXEC for denyoom commands
  (node/log/transactions.py). So while the log actor says a script is busy (``"busy"``): BUSY.
- Inside MULTI, SELECT is queued and runs in the block (the log actor's SELECT), and the
  connection's db follows it. The other connection commands (CLIENT, CONFIG, HELLO...) are
  queued too and run here at EXEC, their replies put in their places in EXEC's array; they
  touch only this connection, so no other client can see them run outside the block.
"""
from __future__ import annotations

import msgpack

from aofnode import protocol as codec
from aofnode import protocol as resp
from aofnode.fronts.resp_gateway import _wire_to_resp, encode_message_reply
from aofnode.fronts.resp_route import MESSAGE_BYTES, Slot
from aofnode.fronts.resp_session import LOCAL, forwarded_local
from aofnode.protocol.keyspecs import SPECS

__all__ = ["TX_COMMANDS", "TxQueue", "ExecSlot", "TransactionRouting"]

TX_COMMANDS = frozenset({"MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"})
_OK = b"+OK\r\n"
_QUEUED = b"+QUEUED\r\n"
_EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"
_ARG_OVERHEAD = resp.ARG_OVERHEAD
_BUSY = resp.error_line(codec.BUSY, codec.BUSY_SCRIPT_MESSAGE)
# Redis's no-multi commands (SHUTDOWN...; WATCH and MULTI have their own errors above)
_NO_MULTI = frozenset(name.upper() for name, row in SPECS.items()
                      if "|" not in name and "no_multi" in row[1].split())
_EXECABORT_BUSY = resp.error_line(codec.EXECABORT, "Transaction discarded because of: BUSY "
                                                   + codec.BUSY_SCRIPT_MESSAGE)
_OOM = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"  # Redis's shared.oomerr


class TxQueue:
    """The commands queued since MULTI, and whether one was refused."""

    __slots__ = ("commands", "names", "size", "failed", "db", "local")

    def __init__(self, db: int) -> None:
        self.local: dict[int, list[bytes]] = {}  # position -> a connection command (CLIENT...)
        self.commands: list[list[bytes]] = []
        self.names: list[str] = []
        self.size = 0
        self.failed = False
        self.db = db  # the db a SELECT in the block leaves: the connection's after EXEC


class ExecSlot(Slot):
    """EXEC's reply: ``fixed`` bytes whatever the log actor says (a DISCARD's UNWATCH), the
    one reply of a WATCH or UNWATCH (``single``), or the block's replies as one array."""

    __slots__ = ("fixed", "single", "local")

    def from_log(self, reply: bytes) -> bytes:
        if self.fixed is not None:
            return self.fixed
        if self.single:
            return encode_message_reply(reply, 1, None, self.resp3)
        try:
            wires = msgpack.unpackb(reply, raw=False, strict_map_key=False)
        except Exception:
            wires = None
        if type(wires) is list and wires and type(wires[0]) is int:
            if wires == [0, None]:  # a watched key changed: nothing ran
                return b"_\r\n" if self.resp3 else b"*-1\r\n"
            return _wire_to_resp(wires, None, self.resp3)
        if type(wires) is not list or len(wires) != len(self.names):
            return resp.error_line("ERR", "malformed reply from the log actor")
        resp3, local = self.resp3, self.local
        replies = [] if self.names == ["PING!"] else [
            _wire_to_resp(w, n, resp3) for w, n in zip(wires, self.names)]
        for i in sorted(local):  # the connection commands, in their places
            replies.insert(i, local[i])
        return b"*%d\r\n" % len(replies) + b"".join(replies)


class TransactionRouting:
    """``_transaction`` for ``RespFront`` (a mixin, as ``CommandRouting``)."""

    log_oom = False  # the log actor is past maxmemory with no room (its ``Stats``)
    log_busy = False  # ... runs a script past busy-reply-threshold (node/log/busy.py)

    def _on_log_state(self, state: dict) -> None:
        if "oom" in state:
            self.log_oom = bool(state["oom"])
        if "busy" in state:
            self.log_busy = bool(state["busy"])
        if "latency_tracking" in state:  # node/fronts/resp_route.py, ``count_command``
            self.latency_tracking = bool(state["latency_tracking"])

    def _transaction(self, conn, name: str, argv: list[bytes], gate: bytes | None,
                     error: bytes | None) -> None:
        """One command while in MULTI, or a transaction command: its slot, in order."""
        session = conn.session
        tx = session.multi
        if name == "RESET" and tx is None:
            return self._outside(conn, name, argv, error)
        if gate is not None:
            if tx is not None:
                tx.failed = True
            self.stats["noauth_replies"] += 1
            return self._counted(conn, name, argv, gate, rejected=True)
        if tx is None:
            return self._outside(conn, name, argv, error)
        if name in ("QUIT", "RESET"):  # never queued (Redis 7.0)
            watching = session.watching
            reply = self._answer_here(conn, name, argv, None, error)
            session.watching = watching
            return self._end_watch(conn, reply)
        if name == "EXEC":
            if len(argv) == 1:
                return self._exec(conn, tx)
            session.multi = None  # Redis: a wrong EXEC discards the transaction
            reply = (b"-EXECABORT Transaction discarded because of: wrong number "
                     b"of arguments for 'exec' command\r\n")
            self._count(name, argv, reply, rejected=True)
            return self._end_watch(conn, reply)
        if name == "DISCARD":
            if len(argv) != 1:
                self.count_command(name, argv, rejected=True)
                return self._queue_error(conn, tx, _arity("discard"))
            session.multi = None
            self.count_command(name, argv)
            return self._end_watch(conn, _OK)
        if name == "MULTI":
            return self._counted(conn, name, argv, b"-ERR MULTI calls can not be nested\r\n")
        if name == "WATCH":
            return self._counted(conn, name, argv, b"-ERR WATCH inside MULTI is not allowed\r\n")
        if error is not None:
            self.stats["rejected_commands"] += 1
            self.count_command(name, argv, rejected=True)
            return self._queue_error(conn, tx, error)
        if name in LOCAL and name not in ("SELECT", "UNWATCH"):
            if forwarded_local(name, argv):
                argv[0] = name  # runs in the block: the log actor takes it by this name only
            else:
                tx.local[len(tx.commands)] = argv  # run here at EXEC, its reply in its place
        if name == "SELECT":
            db = codec.parse_select(argv[1]) if len(argv) == 2 else None
            if type(db) is not int:
                return self._queue_error(conn, tx, resp.error_line("ERR", "DB index is out of range")
                                         if db is not None else _arity("select"))
            tx.db = db
        if name in _NO_MULTI:
            return self._queue_error(conn, tx, b"-ERR Command not allowed inside a transaction\r\n")
        if self.log_oom:  # Redis refuses any command queued past maxmemory (processCommand)
            return self._queue_error(conn, tx, _OOM)
        if self.log_busy:  # ... and while a script is busy
            return self._queue_error(conn, tx, _BUSY)
        cost = sum(map(len, argv)) + _ARG_OVERHEAD * len(argv)
        if tx.size + cost > MESSAGE_BYTES or len(tx.commands) >= codec.MAX_BATCH_LENGTH:
            return self._queue_error(conn, tx, resp.error_line(
                "ERR", f"transaction too large for aofnode: at most {codec.MAX_BATCH_LENGTH} "
                       f"commands and {MESSAGE_BYTES} bytes"))
        tx.commands.append(argv)
        tx.names.append(name)
        tx.size += cost
        self._local(conn, _QUEUED)

    def _outside(self, conn, name: str, argv: list[bytes], error: bytes | None) -> None:
        session = conn.session
        if name == "MULTI":
            if len(argv) != 1:
                return self._counted(conn, name, argv, _arity("multi"), rejected=True)
            session.multi = TxQueue(session.db)
            return self._counted(conn, name, argv, _OK)
        if name in ("EXEC", "DISCARD"):
            if len(argv) != 1:
                return self._counted(conn, name, argv, _arity(name.lower()), rejected=True)
            return self._counted(conn, name, argv, resp.error_line("ERR", f"{name} without MULTI"))
        if name == "WATCH":
            if len(argv) < 2:
                return self._counted(conn, name, argv, _arity("watch"), rejected=True)
            session.watching = True
            return self._send_block(conn, [argv], ["WATCH"], fixed=None, atomic=False)
        if name == "UNWATCH":
            if len(argv) != 1:
                return self._counted(conn, name, argv, _arity("unwatch"), rejected=True)
            self.count_command(name, argv)
            return self._end_watch(conn, _OK)
        if name == "RESET":  # while watching: that is why it came here
            reply = self._answer_here(conn, name, argv, None, error)
            session.watching = True  # RESET cleared it here; the log actor's goes too
            return self._end_watch(conn, reply)
        return self._local(conn, error or b"-ERR internal: not a transaction command\r\n")

    def _exec(self, conn, tx: TxQueue) -> None:
        session = conn.session
        session.multi = None
        if self.log_busy:  # EXEC is refused before its queue is looked at (Redis's processCommand)
            return self._end_watch(conn, _EXECABORT_BUSY)
        if tx.failed:
            self._count("EXEC", [b"EXEC"], _EXECABORT)
            self._monitor_aborted(conn)
            return self._end_watch(conn, _EXECABORT)
        self.count_command("EXEC", [b"EXEC"])
        watched, session.watching = session.watching, False
        local = {i: self._answer_here(conn, tx.names[i], argv, None, None)
                 for i, argv in tx.local.items()}
        commands = [c for i, c in enumerate(tx.commands) if i not in local]
        names = [n for i, n in enumerate(tx.names) if i not in local]
        if not commands and not watched:
            return self._local(conn, b"*%d\r\n" % len(local) + b"".join(local.values()))
        if not commands:
            commands, names = [[b"PING"]], ["PING!"]  # a block must hold a request
        db, session.db = session.db, tx.db
        slot = self._send_block(conn, commands, names, fixed=None, atomic=True, watched=watched, db=db)
        if slot is not None:
            slot.local = local

    def _end_watch(self, conn, reply: bytes) -> None:
        """Answer ``reply``, after an UNWATCH in the log actor if this connection watches."""
        session = conn.session
        if not session.watching:
            return self._local(conn, reply)
        session.watching = False
        self._send_block(conn, [[b"UNWATCH"]], ["UNWATCH"], fixed=reply, atomic=False)

    def _queue_error(self, conn, tx: TxQueue, error: bytes) -> None:
        tx.failed = True
        self.count_error(error)
        self._local(conn, error)

    def _count(self, name: str, argv: list[bytes], reply: bytes, rejected: bool = False) -> None:
        """Count a reply made here in INFO errorstats and commandstats, as Redis counts it."""
        if reply[:1] == b"-":
            self.count_error(reply)
        self.count_command(name, argv, rejected=rejected, failed=reply[:1] == b"-")

    def _counted(self, conn, name: str, argv: list[bytes], reply: bytes,
                 rejected: bool = False) -> None:
        self._count(name, argv, reply, rejected)
        self._local(conn, reply)

    def _local(self, conn, reply: bytes) -> None:
        conn.slots.append(Slot(conn, reply))

    def _send_block(self, conn, commands: list, names: list[str], fixed: bytes | None,
                    atomic: bool, watched: bool = False, db: int | None = None) -> None:
        session = conn.session
        if not self.link.ready:
            return self._local(conn, resp.error_line(codec.LOADING, codec.LOADING_MESSAGE))
        slot = ExecSlot(conn, None, 1, 0, names, session.resp3)
        slot.fixed, slot.single, slot.local = fixed, not atomic, {}
        conn.slots.append(slot)
        header = {"db": session.db if db is None else db}
        if atomic:
            header["multi"] = True
            header["watched"] = watched
        body = msgpack.packb([header, commands], use_bin_type=True)
        slot.size = len(body)
        self.stats["commands"] += len(commands)
        self._forward_body(conn, slot, body)
        return slot


def _arity(name: str) -> bytes:
    return resp.error_line("ERR", f"wrong number of arguments for '{name}' command")
