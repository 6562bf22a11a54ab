"""Entry point of one actor process: ``python -m node.actors ROLE CONFIG_JSON``.

The supervisor starts each actor as its own interpreter (not a fork of itself), so no actor
inherits another's ZeroMQ context, threads or locks. Each configures its logging again here,
after it starts (structlog's advice for multi-process programs).
"""
from __future__ import annotations

import signal
import sys

from node import exitcodes
from node.aof.fileops import die_with_parent
from node.config import Config
from node.logconfig import configure


def main(argv: list[str]) -> int:
    role, config = argv[0], Config.from_json(argv[1])
    # SIGTERM: a killed supervisor still lets the actor finish its batch and fsync.
    die_with_parent(signal.SIGTERM)
    log = configure(role, config.log_format, config.log_file)
    if role == "front":
        from node.actors.front import main as run
    elif role == "log":
        from node.actors.log import main as run
    elif role == "closer":
        from node.actors.closer import main as run
    elif role == "resp":
        from node.actors.resp_front import main as run
    else:
        print(f"unknown actor role {role!r}", file=sys.stderr)
        return exitcodes.ERROR
    return run(config, log)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
