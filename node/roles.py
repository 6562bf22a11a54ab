"""Entry point of one actor process: ``python -m aofnode.roles ROLE CONFIG_JSON``.

The supervisor starts each actor as its own interpreter (not a fork of itself), so no actor
inherits another's ZeroMQ context, threads or locks. Each configures its logging again here,
after it starts (structlog's advice for multi-process programs).
"""
from __future__ import annotations

import signal
import sys

from aofnode import exitcodes
from aofnode.aof.fileops import die_with_parent
from aofnode.config import Config
from aofnode.logconfig import configure


def main(argv: list[str]) -> int:
    role, config = argv[0], Config.from_json(argv[1])
    # SIGTERM: a killed supervisor still lets the actor finish its batch and fsync.
    die_with_parent(signal.SIGTERM)
    log = configure(role, config.log_format, config.log_file)
    if role == "front":
        from aofnode.fronts.zmq_front import main as run
    elif role == "log":
        from aofnode.log.actor import main as run
    elif role == "closer":
        from aofnode.closer.actor import main as run
    elif role == "resp":
        from aofnode.fronts.resp_front import main as run
    else:
        print(f"unknown actor role {role!r}", file=sys.stderr)
        return exitcodes.ERROR
    return run(config, log)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
