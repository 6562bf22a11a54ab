"""A synchronous client for aofnode: one request (or one pipeline) in flight at a time.

Design (the ZeroMQ guide's Lazy Pirate, on a DEALER socket):
- Each call sends ``["", body]`` and polls for the reply with a timeout.
- On a timeout the socket is closed with linger 0, and the next try opens a new one, so a late
  reply can never be taken for the answer to a later request.
- Retries use tenacity with jittered exponential backoff, and happen only when repeating is safe:
  1. after a timeout or an ABORTED reply, for retry-safe commands only (protocol/commands.py),
     at most ``retries`` tries in all;
  2. after LOADING, for any command (the node refused it before executing it), for up to
     ``loading_timeout`` seconds from the first LOADING reply. Then the call fails with a
     LOADING ``CommandError`` that says how long it waited.
- The db travels with every message (protocol 2): the client keeps the db its last successful
  SELECT chose and writes it in each message's header, so a new socket, a restarted front or
  a reconnect can never move a command to another db. A retry resends the same bytes, so it
  runs on the db of the first try.
- With ``password``, each new socket sends AUTH first (a node with a password answers NOAUTH to
  anything else). A NOAUTH reply (the front restarted and forgot this connection, which ZeroMQ
  reconnected invisibly) means the command did not run: the client sends AUTH and the command
  again, once.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Sequence

import msgpack
import zmq
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

from aofnode.protocol.client import decode_batch_reply, decode_reply
from aofnode.protocol.commands import COMMANDS
from aofnode.protocol.errors import ABORTED, LOADING, NOAUTH, Error
from aofnode.protocol.wire import encode_batch, encode_request

__all__ = ["Client", "CommandError", "NodeTimeout", "DEFAULT_LOADING_TIMEOUT"]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7700"

# How long a call keeps retrying while the node answers LOADING. A node is LOADING while it reads
# its AOF at start and while the log actor restarts: a reload of 1M entries takes ~2 s (measured),
# so 30 s covers a dataset of ~15M entries. A node LOADING for longer is likely in
# trouble (crash loop), and the caller should hear about it rather than wait on.
DEFAULT_LOADING_TIMEOUT = 30.0
# Between LOADING tries: full jitter over a window that starts at 50 ms and doubles up to 1 s, so
# a short reload is noticed within tens of ms and many clients do not retry in lockstep; at the cap
# a waiting client costs the node ~2 replies a second.
_LOADING_WAIT = wait_random_exponential(multiplier=0.05, max=1.0)
# Between tries after a timeout or ABORTED (the node may be overloaded): the same, capped at 2 s.
_FAILURE_WAIT = wait_random_exponential(multiplier=0.05, max=2.0)


class CommandError(Exception):
    """An error reply from the node: ``code`` (e.g. ``WRONGTYPE``) and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


class NodeTimeout(TimeoutError):
    """No reply within the timeout (after the retries that were safe)."""


class _Retryable(Exception):
    """A timeout or ABORTED that may be retried (bounded by ``retries``)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _StillLoading(Exception):
    """A LOADING reply (bounded by ``loading_timeout``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _retry_safe(commands: Iterable[Sequence]) -> bool:
    for cmd in commands:
        name = cmd[0].decode() if isinstance(cmd[0], bytes) else str(cmd[0])
        spec = COMMANDS.get(name.upper())
        if spec is None or not spec.retry_safe:
            return False
    return True


class _RetryPolicy:
    """One call's retries (the module docstring's rules 1 and 2): ``attempt`` raises
    ``_Retryable`` (counted in ``failures``, against ``retries``) or ``_StillLoading`` (from
    ``still_loading``, against ``loading_timeout`` from the first LOADING reply)."""

    def __init__(self, retries: int, loading_timeout: float) -> None:
        self.retries = retries
        self.loading_timeout = loading_timeout
        self.failures = 0  # timeouts and ABORTED replies, against retries
        self.loading_since: float | None = None  # monotonic time of the first LOADING reply
        self.loading_replies = 0

    def still_loading(self, message: str) -> _StillLoading:
        if self.loading_since is None:
            self.loading_since = time.monotonic()
        self.loading_replies += 1
        return _StillLoading(message)

    def stop(self, state: RetryCallState) -> bool:
        if isinstance(state.outcome.exception(), _StillLoading):
            return time.monotonic() - self.loading_since >= self.loading_timeout
        return self.failures >= self.retries

    def wait(self, state: RetryCallState) -> float:
        if isinstance(state.outcome.exception(), _StillLoading):
            # The last try lands on the deadline rather than a jittered wait past it.
            left = self.loading_since + self.loading_timeout - time.monotonic()
            return max(0.0, min(_LOADING_WAIT(state), left))
        return _FAILURE_WAIT(state)

    def run(self, attempt: Callable[[], Any]) -> Any:
        """``attempt()``'s reply, retried while the rules allow; when they give up, LOADING and
        ABORTED come back as an ``Error`` reply and a timeout is raised as ``NodeTimeout``."""
        retrying = Retrying(
            stop=self.stop,
            wait=self.wait,
            retry=retry_if_exception(lambda e: isinstance(e, (_Retryable, _StillLoading))),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _StillLoading as exc:
            waited = time.monotonic() - self.loading_since
            return Error(LOADING,
                         f"{exc.message} (still loading after {waited:.1f}s and "
                         f"{self.loading_replies} tries; loading_timeout={self.loading_timeout}s)")
        except _Retryable as exc:
            cause = exc.cause
            if isinstance(cause, CommandError):
                return Error(cause.code, cause.message)
            raise cause from None


class Client:
    """A connection to one node.

    ``timeout``: seconds to wait for each reply. ``retries``: tries in all for a retry-safe call
    that times out or gets ABORTED (1: no retry). ``loading_timeout``: seconds to keep retrying,
    for any command, while the node answers LOADING (default 30 s; 0: no retry); the call then
    raises ``CommandError`` with code LOADING.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, timeout: float = 5.0, retries: int = 3,
                 context: zmq.Context | None = None,
                 loading_timeout: float = DEFAULT_LOADING_TIMEOUT, db: int = 0,
                 curve: tuple[bytes, bytes, bytes] | None = None,
                 password: bytes | str | None = None) -> None:
        self.endpoint = endpoint
        # CURVE (docs/protocol.md): (server public key, client public key, client secret key),
        # each Z85 (40 characters, as in the certificates of ``aofnode keygen``) or 32 raw bytes.
        self.curve = curve
        # --requirepass of the node (docs/protocol.md, "Password"); sent on each new socket.
        self.password = password.encode() if isinstance(password, str) else password
        self._authenticated = False
        self.timeout = timeout
        self.retries = max(1, retries)
        self.loading_timeout = max(0.0, loading_timeout)
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._db = db
        self._watched = False  # WATCH sent since the last transaction
        self._open()
        if self.password is not None:
            self._authenticate()

    # -- public -------------------------------------------------------------------------------

    def execute(self, command: str | bytes, *args: Any) -> Any:
        """Run one command; return its reply or raise ``CommandError``/``NodeTimeout``."""
        reply = self._call([(command, *args)], batch=False)
        if isinstance(reply, Error):
            raise CommandError(reply.code, reply.message)
        if _is_select(command) and reply == "OK":
            self._db = int(args[0])
        return reply

    def execute_many(self, commands: Sequence[Sequence]) -> list:
        """Run a pipeline in one round trip; errors come back in place as ``CommandError``."""
        if not commands:
            return []
        replies = self._call(list(commands), batch=True)
        if isinstance(replies, Error):
            raise CommandError(replies.code, replies.message)
        out = []
        for cmd, reply in zip(commands, replies):
            if isinstance(reply, Error):
                out.append(CommandError(reply.code, reply.message))
            else:
                if _is_select(cmd[0]) and reply == "OK":
                    self._db = int(cmd[1])
                out.append(reply)
        return out

    def watch(self, *keys: Any) -> None:
        """WATCH: the next ``transaction`` aborts (returns None) if one of ``keys`` changes
        first. The node keeps the watch under this socket's identity while it is not idle for
        more than ~5 s (docs/protocol.md); past that the transaction aborts too: retry."""
        self.execute("WATCH", *keys)
        self._watched = True

    def unwatch(self) -> None:
        self.execute("UNWATCH")
        self._watched = False

    def transaction(self, commands: Sequence[Sequence]) -> list | None:
        """MULTI/EXEC in one message: every command runs, in one go, or none. Returns the
        replies (errors in place as ``CommandError``), or None if a watched key changed. An
        invalid command refuses the whole block (``CommandError`` EXECABORT)."""
        encode_batch(commands, db=self._db)  # the same checks (TypeError, ValueError)
        watched, self._watched = self._watched, False
        header = {"db": self._db, "multi": True, "watched": watched}
        body = msgpack.packb([header, [list(cmd) for cmd in commands]], use_bin_type=True)
        replies = self._call(list(commands), batch="multi", body=body)
        if replies is None:
            return None
        if isinstance(replies, Error):
            raise CommandError(replies.code, replies.message)
        return [CommandError(r.code, r.message) if isinstance(r, Error) else r for r in replies]

    @property
    def db(self) -> int:
        """The db every message is sent for (``db=`` at construction, then the last SELECT)."""
        return self._db

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- Lazy Pirate --------------------------------------------------------------------------

    def _open(self) -> None:
        self.close()
        self._authenticated = False
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:  # before connect: the handshake uses them
            server_key, public_key, secret_key = self.curve
            sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, public_key)
            sock.setsockopt(zmq.CURVE_SECRETKEY, secret_key)
        sock.connect(self.endpoint)
        self._sock = sock

    def _authenticate(self) -> None:
        """AUTH on this socket; CommandError if the node refuses it (a wrong password)."""
        reply = self._roundtrip(encode_request("AUTH", self.password), False)
        if isinstance(reply, Error):
            raise CommandError(reply.code, reply.message)
        self._authenticated = True

    def _call(self, commands: list, batch: bool | str, body: bytes | None = None):
        reply = self._call_once(commands, batch, body)
        if self.password is not None and _noauth(reply):
            self._authenticated = False  # the node forgot us: it did not run the command
            reply = self._call_once(commands, batch, body)
        return reply

    def _call_once(self, commands: list, batch: bool | str, body: bytes | None = None):
        db = self._db
        if body is None:
            body = encode_batch(commands, db=db) if batch else encode_request(*commands[0], db=db)
        safe = _retry_safe(commands)
        policy = _RetryPolicy(self.retries, self.loading_timeout)

        def attempt():
            try:
                if self._sock is None:
                    self._open()
                if self.password is not None and not self._authenticated:
                    self._authenticate()
                reply = self._roundtrip(body, batch)
            except NodeTimeout as exc:
                self.close()  # never reuse a socket that may still get the late reply
                policy.failures += 1
                if safe:
                    raise _Retryable(exc) from exc
                raise
            # LOADING and ABORTED answer a whole message (protocol.md), never one item of a batch.
            if isinstance(reply, Error):
                if reply.code == LOADING:
                    raise policy.still_loading(reply.message)
                if reply.code == ABORTED and safe:
                    policy.failures += 1
                    raise _Retryable(CommandError(reply.code, reply.message))
            return reply

        return policy.run(attempt)

    def _roundtrip(self, body: bytes, batch: bool):
        sock = self._sock
        sock.send_multipart([b"", body])
        if not sock.poll(int(self.timeout * 1000), zmq.POLLIN):
            raise NodeTimeout(f"no reply from {self.endpoint} within {self.timeout}s")
        frames = sock.recv_multipart()
        payload = frames[-1]
        if batch == "multi" and msgpack.unpackb(payload, raw=False, strict_map_key=False) == [0, None]:
            return None  # a watched key changed: nothing ran
        return decode_batch_reply(payload) if batch else decode_reply(payload)


def _noauth(reply) -> bool:
    """NOAUTH for a message or any item of a batch: the node ran none of it (docs/protocol.md)."""
    if isinstance(reply, list):
        return any(isinstance(r, Error) and r.code == NOAUTH for r in reply)
    return isinstance(reply, Error) and reply.code == NOAUTH


def _is_select(name) -> bool:
    return (name.decode() if isinstance(name, bytes) else str(name)).upper() == "SELECT"
