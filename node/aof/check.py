"""``aofnode check-aof FILE [--fix] [--yes]``: the loader's verdict on a file, and its repair.

Design:
- No rule of its own: the verdict is ``format.scan``'s, the same call ``format.load`` makes at
  node start, so check-aof says exactly what the node would do with the file:
  ``ok`` (the node loads it all), ``torn_tail`` (the node cuts ``bad_offset``..EOF, logs
  ``aof_truncated`` and starts) or ``corrupt`` (the node refuses to start and exits 3).
- Output is one ``key: value`` per line so scripts can parse it. Exit codes: 0 ok (or fixed),
  1 a problem found and not fixed, 2 the file could not be read or truncated.
- ``--fix`` truncates at the first bad offset (``ok_up_to``) after a confirmation (``--yes``
  skips it). For a corrupt file everything from the first bad record on is lost, as with
  redis-check-aof --fix. It never truncates a file whose header is bad (it may not be an AOF at
  all), nor a file that changed size since the check (a running node). It never runs while the
  node does: the caller is a person with the node stopped.
"""
from __future__ import annotations

import os
import shlex
import sys
from typing import Callable, TextIO

from aofnode.aof.format import ScanResult, scan, truncate_durably

__all__ = ["check_aof_main", "describe_verdict"]


def describe_verdict(result: ScanResult) -> str:
    """What ``aofnode serve`` would do with a file that scanned as ``result``, in one line."""
    if result.status == "ok":
        return "the node loads every record"
    if result.status == "torn_tail":
        cut = result.file_size - result.ok_up_to
        return (f"the node cuts the torn tail ({cut} bytes at offset {result.ok_up_to}) "
                "and starts")
    return f"the node refuses to start (exit code 3): corrupt at offset {result.bad_offset}"


def check_aof_main(
    path: str,
    fix: bool,
    yes: bool,
    out: TextIO = sys.stdout,
    confirm: Callable[[str], str] = input,
) -> int:
    """Print the verdict on ``path``; with ``fix``, truncate at the first bad offset."""
    def say(line: str) -> None:
        print(line, file=out)

    try:
        result = scan(path)
    except OSError as exc:
        say(f"error: cannot read {path}: {exc.strerror or exc}")
        return 2
    say(f"status: {result.status}")
    say(f"records: {result.records}")
    say(f"entries: {result.entries}")
    say(f"ok_up_to: {result.ok_up_to}")
    say(f"file_size: {result.file_size}")
    if result.status == "ok":
        say(f"verdict: {describe_verdict(result)}")
        return 0
    say(f"bad_offset: {result.bad_offset}")
    say(f"problem: {result.problem}")
    say(f"verdict: {describe_verdict(result)}")
    if result.status == "corrupt" and result.bad_offset == 0:
        # A bad header means this may not be an AOF at all: truncating would erase someone's file.
        say("error: bad header; refusing to truncate, remove or move the file by hand")
        return 1
    if not fix:
        say(f"run: aofnode check-aof --fix {shlex.quote(path)}")
        return 1
    return _fix(path, result, yes, say, confirm)


def _fix(path: str, result: ScanResult, yes: bool, say: Callable[[str], None],
         confirm: Callable[[str], str]) -> int:
    lost = result.file_size - result.ok_up_to
    if not yes:
        try:
            answer = confirm(
                f"Truncate {path} from {result.file_size} to {result.ok_up_to} bytes "
                f"({lost} bytes lost)? [y/N] "
            )
        except EOFError:
            answer = ""
        if not answer.strip().lower().startswith("y"):
            say("aborted: file left unchanged")
            return 1
    try:
        if os.stat(path).st_size != result.file_size:
            say("error: file size changed since the check (is the node running?); not truncated")
            return 2
        truncate_durably(path, result.ok_up_to)
    except OSError as exc:
        say(f"error: cannot truncate {path}: {exc.strerror or exc}")
        return 2
    say(f"truncated: {lost} bytes")
    return 0
