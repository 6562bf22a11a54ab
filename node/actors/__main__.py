"""Entry point of one actor process: ``python -m node.actors ROLE CONFIG_JSON``.

The supervisor starts each actor as its own interpreter (not a fork of itself), so no actor
inherits another's ZeroMQ context, threads or locks.
"""
from __future__ import annotations

import ctypes
import signal
import sys

from node.config import Config

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` when our parent dies, so no actor outlives a killed supervisor
    (SIGTERM: the actor still finishes its batch and fsyncs)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    role, config = argv[0], Config.from_json(argv[1])
    die_with_parent()
    if role == "front":
        from node.actors.front import run
    elif role == "log":
        from node.actors.log import run
    elif role == "closer":
        from node.actors.closer import run
    else:
        print(f"unknown actor role {role!r}", file=sys.stderr)
        return 2
    return run(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
