"""Exit codes of ``aofnode serve`` and of the actor processes (docs/protocol.md and README).

An actor that exits with one of the fatal codes found something a restart cannot fix: the
supervisor stops the node with the same code and a one-line reason on stderr.
"""
from __future__ import annotations

__all__ = ["OK", "ERROR", "CORRUPT_AOF", "LOCKED", "BIND", "STORAGE", "CRASH_LOOP", "SHUTDOWN", "FATAL"]

OK = 0
ERROR = 1          # an unexpected error (a bug): see the log
CORRUPT_AOF = 3    # the AOF is corrupt: run `aofnode check-aof --fix FILE`
LOCKED = 4         # another aofnode holds the data directory
BIND = 5           # the client endpoint cannot be bound (port in use, bad address)
STORAGE = 6        # the data directory or the AOF cannot be created or written at start
CRASH_LOOP = 7     # an actor died too often in a short time (see --crash-loop-*)
# The log actor ran SHUTDOWN (an actor's code only): the supervisor stops the node, which exits
# 0 as after SIGTERM.
SHUTDOWN = 8

FATAL = frozenset({CORRUPT_AOF, BIND, STORAGE})
