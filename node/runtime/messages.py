"""The vocabulary between actors: every internal message, typed, with its wire form.

Front <-> log travel over one Unix stream socket (node/runtime/channel.py), log -> closer over
a Unix SEQPACKET socket (node/closer/actor.py). Both carry msgpack arrays whose first element
is a one-byte kind; ``encode`` and ``decode`` below are the only code that knows that layout.

| message | direction | meaning |
|---|---|---|
| ``Batch(first_seq, clients, bodies)`` | front -> log | execute these client messages |
| ``Replies(taken, seqs, replies)`` | log -> front | end of a log turn: replies, by number |
| ``Hello(pid)`` | log -> front | the keyspace is loaded; send batches (first message) |
| ``Stats(counters)`` | front -> log | front counters for INFO, once a second |
| ``Stats(state)`` | log -> front | log state a front acts on, when it changes (``{"oom": 0|1}``) |
| ``Forget(client, closing)`` | front -> log | drop a cut-off client's work; ``closing``: EOF, no blocking |
| ``Deliver(clients, channel, message, pattern)`` | log -> front | a PUBLISH for these subscribers |
| ``Monitor(clients, entries)`` | log -> front | MONITOR lines for these clients |
| ``Invalidate(client, pushes, redirected, broken)`` | log -> front | CLIENT TRACKING pushes for one client |
| ``CloseJob(job_id, path)`` | log -> closer | close the fd that travels with it (SCM_RIGHTS) |
| ``UnlinkJob(job_id, path)`` | log -> closer | unlink a file of ours (a stale or failed temp file) |
| ``Release(job_id)`` | log -> closer | my copy of that job's fd is closed: yours is the last |
| ``JobDone(job_id, ok, seconds, error)`` | closer -> log | the job ran (or was refused) |

Order, numbering, several fronts and the layout of a ``Batch`` body: docs/design.md,
"Internal messages". ``decode`` raises ``BadMessage`` for anything malformed: a peer's garbage
is logged by the receiver, never a crash.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Batch", "Replies", "Hello", "Stats", "Forget", "Deliver", "Monitor", "Invalidate", "CloseJob", "UnlinkJob",
           "Release", "JobDone", "Message", "BadMessage", "encode", "decode"]


@dataclass(frozen=True, slots=True)
class Batch:
    first_seq: int
    clients: list[int]
    bodies: list[bytes]


@dataclass(frozen=True, slots=True)
class Replies:
    taken: int
    seqs: list[int]
    replies: list[bytes]


@dataclass(frozen=True, slots=True)
class Hello:
    pid: int


@dataclass(frozen=True, slots=True)
class Stats:
    counters: dict


@dataclass(frozen=True, slots=True)
class Forget:
    client: int
    # The client only stopped sending (EOF, maybe a half-close): its queued work still runs and
    # is answered, but it never waits in a blocking pop (answered as at a timeout).
    closing: bool = False


@dataclass(frozen=True, slots=True)
class Deliver:
    clients: list[int]  # the front's client numbers
    channel: bytes
    message: bytes
    pattern: bytes | None = None  # the matching pattern of a PSUBSCRIBE, None for SUBSCRIBE


@dataclass(frozen=True, slots=True)
class Monitor:
    clients: list[int]  # the front's client numbers that monitor
    entries: list  # [time, db, source, argv] each (node/log/monitor.py)


@dataclass(frozen=True, slots=True)
class Invalidate:
    client: int  # the front's client number that gets them (the redirect target, if any)
    pushes: list  # one invalidation each: a list of key names, or None (every key: a flush)
    redirected: bool = False  # for another client's tracking (a RESP2 subscriber may get it)
    broken: int = 0  # instead of pushes: the redirect target of this id is gone


@dataclass(frozen=True, slots=True)
class CloseJob:
    job_id: int
    path: str


@dataclass(frozen=True, slots=True)
class UnlinkJob:
    job_id: int
    path: str


@dataclass(frozen=True, slots=True)
class Release:
    job_id: int


@dataclass(frozen=True, slots=True)
class JobDone:
    job_id: int
    ok: bool
    seconds: float
    error: str = ""


Message = (Batch | Replies | Hello | Stats | Forget | Deliver | Monitor | Invalidate | CloseJob | UnlinkJob
           | Release | JobDone)


class BadMessage(ValueError):
    """A message that does not match its kind's layout."""


_BATCH, _REPLIES, _HELLO, _STATS, _FORGET = b"B", b"R", b"H", b"S", b"F"
_CLOSE, _UNLINK, _RELEASE, _DONE = b"C", b"U", b"L", b"D"
_DELIVER, _MONITOR, _INVALIDATE = b"P", b"M", b"I"


def encode(msg: Message) -> list:
    """The msgpack-ready array of ``msg``."""
    kind = type(msg)
    if kind is Batch:
        return [_BATCH, msg.first_seq, msg.clients, *msg.bodies]
    if kind is Replies:
        return [_REPLIES, msg.taken, msg.seqs, *msg.replies]
    if kind is Hello:
        return [_HELLO, msg.pid]
    if kind is Stats:
        return [_STATS, msg.counters]
    if kind is Forget:
        return [_FORGET, msg.client, 1] if msg.closing else [_FORGET, msg.client]
    if kind is Deliver:
        return [_DELIVER, msg.clients, msg.channel, msg.message, msg.pattern]
    if kind is Monitor:
        return [_MONITOR, msg.clients, msg.entries]
    if kind is Invalidate:
        return [_INVALIDATE, msg.client, msg.pushes, msg.redirected, msg.broken]
    if kind is CloseJob:
        return [_CLOSE, msg.job_id, msg.path]
    if kind is UnlinkJob:
        return [_UNLINK, msg.job_id, msg.path]
    if kind is Release:
        return [_RELEASE, msg.job_id]
    if kind is JobDone:
        return [_DONE, msg.job_id, msg.ok, msg.seconds, msg.error]
    raise TypeError(f"not a message: {msg!r}")


def _int(value) -> int:
    if type(value) is not int:
        raise BadMessage(f"expected an integer, got {type(value).__name__}")
    return value


def _str(value) -> str:
    if type(value) is not str:
        raise BadMessage(f"expected a string, got {type(value).__name__}")
    return value


def _ints(values, n: int) -> list[int]:
    if type(values) is not list or len(values) != n or any(type(v) is not int for v in values):
        raise BadMessage(f"expected a list of {n} integers")
    return values


def _frames(values) -> list[bytes]:
    if any(type(v) is not bytes for v in values):
        raise BadMessage("expected bytes frames")
    return list(values)


def decode(obj) -> Message:
    """The message of a decoded msgpack array; ``BadMessage`` if it is not one."""
    if type(obj) is not list or not obj or type(obj[0]) is not bytes:
        raise BadMessage("a message is an array that starts with its kind")
    kind, n = obj[0], len(obj)
    if kind == _BATCH and n >= 3:
        bodies = _frames(obj[3:])
        return Batch(_int(obj[1]), _ints(obj[2], len(bodies)), bodies)
    if kind == _REPLIES and n >= 3:
        replies = _frames(obj[3:])
        return Replies(_int(obj[1]), _ints(obj[2], len(replies)), replies)
    if kind == _HELLO and n == 2:
        return Hello(_int(obj[1]))
    if kind == _STATS and n == 2 and type(obj[1]) is dict:
        return Stats(obj[1])
    if kind == _FORGET and n == 2:
        return Forget(_int(obj[1]))
    if kind == _FORGET and n == 3:
        return Forget(_int(obj[1]), bool(obj[2]))
    if kind == _DELIVER and n == 5 and type(obj[1]) is list and type(obj[2]) is bytes \
            and type(obj[3]) is bytes and (obj[4] is None or type(obj[4]) is bytes):
        return Deliver(_ints(obj[1], len(obj[1])), obj[2], obj[3], obj[4])
    if kind == _MONITOR and n == 3 and type(obj[1]) is list and type(obj[2]) is list \
            and all(type(e) is list and len(e) == 4 and type(e[3]) is list for e in obj[2]):
        return Monitor(_ints(obj[1], len(obj[1])), obj[2])
    if kind == _INVALIDATE and n == 5 and type(obj[2]) is list and type(obj[3]) is bool \
            and all(p is None or (type(p) is list and all(type(k) is bytes for k in p)) for p in obj[2]):
        return Invalidate(_int(obj[1]), obj[2], obj[3], _int(obj[4]))
    if kind == _CLOSE and n == 3:
        return CloseJob(_int(obj[1]), _str(obj[2]))
    if kind == _UNLINK and n == 3:
        return UnlinkJob(_int(obj[1]), _str(obj[2]))
    if kind == _RELEASE and n == 2:
        return Release(_int(obj[1]))
    if kind == _DONE and n == 5 and type(obj[2]) is bool and type(obj[3]) in (int, float):
        return JobDone(_int(obj[1]), obj[2], float(obj[3]), _str(obj[4]))
    raise BadMessage(f"malformed message of kind {kind!r} with {n} elements")
