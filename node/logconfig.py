"""Structured logging for every aofnode process.

Design:
- One JSON object per line (or a console rendering for people at a terminal).
- Context is bound once per process: ``actor`` (front, log, closer, supervisor, cli) and ``pid``.
- Event names are snake_case and say what changed (``aof_loaded``, ``actor_died``); the whole
  list is ``EVENTS`` in node/tools/logevents.py and docs/logs.md.
  Hot paths log one line per batch summary or state change, never one per request.
- Every process calls :func:`configure` again after it starts (structlog's configuration is
  per process, and a forked rewrite child never logs at all: see node/aof/rewrite_child.py).
"""
from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

import structlog

__all__ = ["configure"]

_stream: TextIO | None = None


class _SafeWriter:
    """structlog's logger: one line per write, and a write that fails (ENOSPC, EFBIG, a closed
    pipe) drops the line instead of raising into the actor. A full disk must turn into an
    error state of the AOF, not into a dead process that died logging about it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        try:
            self._stream.write(message + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # the line is lost; the state it reports is still in INFO

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def configure(actor: str, log_format: str = "json", log_file: str | None = None) -> structlog.BoundLogger:
    """Configure structlog for this process and return a logger bound to ``actor`` and ``pid``."""
    global _stream
    if log_file:
        # O_APPEND: several processes share the file; each line is one write(2), and appends
        # of a line this size land whole.
        _stream = open(log_file, "a", buffering=1, encoding="utf-8")
    else:
        _stream = sys.stderr
    processors: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.processors.format_exc_info,
    ]
    if log_format == "console":
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    else:
        processors.append(structlog.processors.JSONRenderer(sort_keys=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lambda *_args: _SafeWriter(_stream),
        cache_logger_on_first_use=False,
    )
    return structlog.get_logger().bind(actor=actor, pid=os.getpid())

