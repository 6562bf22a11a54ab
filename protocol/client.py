"""A synchronous client for aofnode: one request (or one pipeline) in flight at a time.

Design (the ZeroMQ guide's Lazy Pirate, on a DEALER socket):
- Each call sends ``["", body]`` and polls for the reply with a timeout.
- On a timeout the socket is closed with linger 0 and a new one is opened, so a late reply can
  never be taken for the answer to a later request.
- Retries use tenacity with bounded attempts and jittered exponential backoff, and happen only
  when repeating is safe: for retry-safe commands (protocol/commands.py) after a timeout or an
  ABORTED reply, and for any command after LOADING (the node refused it before executing it).
- SELECT is per socket on the node, so the client remembers its db and selects it again on each
  new socket.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import zmq
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from protocol import codec
from protocol.commands import COMMANDS

__all__ = ["Client", "CommandError", "NodeTimeout"]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7700"


class CommandError(Exception):
    """An error reply from the node: ``code`` (e.g. ``WRONGTYPE``) and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


class NodeTimeout(TimeoutError):
    """No reply within the timeout (after the retries that were safe)."""


class _Retryable(Exception):
    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _retry_safe(commands: Iterable[Sequence]) -> bool:
    for cmd in commands:
        name = cmd[0].decode() if isinstance(cmd[0], bytes) else str(cmd[0])
        spec = COMMANDS.get(name.upper())
        if spec is None or not spec.retry_safe:
            return False
    return True


class Client:
    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, timeout: float = 5.0, retries: int = 3,
                 context: zmq.Context | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = max(1, retries)
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._db = 0
        self._open()

    # -- public -------------------------------------------------------------------------------

    def execute(self, command: str | bytes, *args: Any) -> Any:
        """Run one command; return its reply or raise ``CommandError``/``NodeTimeout``."""
        reply = self._call([(command, *args)], batch=False)
        if isinstance(reply, codec.Error):
            raise CommandError(reply.code, reply.message)
        if _is_select(command) and reply == "OK":
            self._db = int(args[0])
        return reply

    def execute_many(self, commands: Sequence[Sequence]) -> list:
        """Run a pipeline in one round trip; errors come back in place as ``CommandError``."""
        if not commands:
            return []
        replies = self._call(list(commands), batch=True)
        if isinstance(replies, codec.Error):
            raise CommandError(replies.code, replies.message)
        out = []
        for cmd, reply in zip(commands, replies):
            if isinstance(reply, codec.Error):
                out.append(CommandError(reply.code, reply.message))
            else:
                if _is_select(cmd[0]) and reply == "OK":
                    self._db = int(cmd[1])
                out.append(reply)
        return out

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
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        self._sock = sock
        if self._db:
            body = codec.encode_request("SELECT", self._db)
            reply = self._roundtrip(body, batch=False)
            if isinstance(reply, codec.Error):
                raise CommandError(reply.code, reply.message)

    def _call(self, commands: list, batch: bool):
        body = codec.encode_batch(commands) if batch else codec.encode_request(*commands[0])
        safe = _retry_safe(commands)

        def attempt():
            if self._sock is None:
                self._open()
            try:
                reply = self._roundtrip(body, batch)
            except NodeTimeout as exc:
                self._open()  # never reuse a socket that may still get the late reply
                if safe:
                    raise _Retryable(exc) from exc
                raise
            # LOADING and ABORTED answer a whole message (protocol.md), never one item of a batch.
            if isinstance(reply, codec.Error) and (reply.code == codec.LOADING
                                                   or (reply.code == codec.ABORTED and safe)):
                raise _Retryable(CommandError(reply.code, reply.message))
            return reply

        retrying = Retrying(
            stop=stop_after_attempt(self.retries),
            wait=wait_random_exponential(multiplier=0.05, max=2.0),
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retryable as exc:
            cause = exc.cause
            if isinstance(cause, CommandError):
                return codec.Error(cause.code, cause.message)
            raise cause from None

    def _roundtrip(self, body: bytes, batch: bool):
        sock = self._sock
        sock.send_multipart([b"", body])
        if not sock.poll(int(self.timeout * 1000), zmq.POLLIN):
            raise NodeTimeout(f"no reply from {self.endpoint} within {self.timeout}s")
        frames = sock.recv_multipart()
        payload = frames[-1]
        return codec.decode_batch_reply(payload) if batch else codec.decode_reply(payload)


def _is_select(name) -> bool:
    return (name.decode() if isinstance(name, bytes) else str(name)).upper() == "SELECT"
