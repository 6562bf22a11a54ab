"""Fault injection into a real node: make chosen fsync/fdatasync/rename calls fail with EIO.

Design
------
The node's processes run with ``tests/faultfs/faultfs.c`` preloaded (``LD_PRELOAD``); the
header comment of that file is the reference for the rules. This module builds the shim once
per test session with the system C compiler (the tests that use it are skipped, with the
reason, when there is none) and gives a test a ``Faults`` object:

* ``faults.env`` goes to ``make_node(..., env=faults.env)``. With no rule armed every call goes
  straight to libc, so the node starts and loads normally.
* ``faults.arm("fdatasync", "appendonly.aof", skip=0, count=-1)`` arms a rule while the node
  runs: the shim reads the control file on every call it wraps. ``faults.disarm()`` removes
  every rule. The pattern is a substring of the path, or ``"=" + path`` for an exact path
  (``Faults.exact(path)`` builds it, resolving symlinks as ``/proc/self/fd`` does).
* ``faults.rules()`` is what is left of each rule (the shim counts down in the file itself, so a
  forked rewrite child and its parent share one count); ``faults.fired()`` lists the calls that
  were failed, and ``faults.wait_fired(n)`` waits, bounded, until ``n`` were.

The test and the shim take the same flock on the control file, so arming never races a call
that is reading it.
"""
from __future__ import annotations

import errno as errno_codes
import fcntl
import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.nodeproc import wait_for

__all__ = ["FAULT_FILE_ENV", "Rule", "Fired", "Faults", "faultfs_library", "faults"]

FAULT_FILE_ENV = "AOFNODE_FAULT_FILE"
SOURCE = Path(__file__).parent / "faultfs" / "faultfs.c"
OPS = ("fsync", "fdatasync", "rename")


class Rule(NamedTuple):
    """One line of the control file (see faultfs.c): ``count`` -1 means until disarmed."""

    op: str
    pattern: str
    skip: int
    count: int
    errno: int = errno_codes.EIO

    def line(self) -> str:
        return f"{self.op} {self.pattern} {self.skip} {self.count} {self.errno}\n"


class Fired(NamedTuple):
    """One call the shim failed: which process, which call, on which path, with which errno."""

    pid: int
    op: str
    path: str
    errno: int


class Faults:
    """The control file of one test: arm, disarm and watch faults; see the module docstring."""

    def __init__(self, library: Path, control: Path) -> None:
        self.library = Path(library)
        self.control = Path(control)
        self.control.touch()

    @property
    def env(self) -> dict[str, str]:
        preload = " ".join(p for p in (str(self.library), os.environ.get("LD_PRELOAD", "")) if p)
        return {"LD_PRELOAD": preload, FAULT_FILE_ENV: str(self.control)}

    @staticmethod
    def exact(path: str | Path) -> str:
        """The pattern for exactly ``path``, as readlink of an fd on it would spell it."""
        return "=" + os.path.realpath(path)

    def arm(self, op: str, pattern: str, skip: int = 0, count: int = 1,
            errno: int = errno_codes.EIO) -> None:
        """Fail ``count`` calls of ``op`` on a path matching ``pattern`` (-1: until disarmed),
        after ``skip`` matching calls that succeed. Adds to the rules already armed; the first
        rule that matches a call decides it."""
        if op not in OPS:
            raise ValueError(f"op must be one of {OPS}, got {op!r}")
        if not pattern or any(c.isspace() for c in pattern):
            raise ValueError(f"pattern must be non-empty without spaces, got {pattern!r}")
        self._update(lambda rules: [*rules, Rule(op, pattern, skip, count, errno)])

    def disarm(self) -> None:
        """Remove every rule: from the next call on, everything goes to libc."""
        self._update(lambda rules: [])

    def rules(self) -> list[Rule]:
        return self._update(None)

    def fired(self) -> list[Fired]:
        path = self.control.with_name(self.control.name + ".fired")
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            pid, op, rest = line.split(" ", 2)
            fpath, err = rest.rsplit(" ", 1)
            out.append(Fired(int(pid), op, fpath, int(err)))
        return out

    def wait_fired(self, n: int = 1, timeout: float = 10.0) -> list[Fired]:
        """Wait until at least ``n`` calls were failed; return them all."""
        return wait_for(lambda: len(self.fired()) >= n and self.fired(), timeout,
                        what=f"{n} injected fault(s) to fire (rules left: {self.rules()})")

    def _update(self, change) -> list[Rule]:
        with open(self.control, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # the shim holds the same lock while it counts
            rules = [_parse(line) for line in f.read().splitlines() if line.strip()]
            if change is not None:
                rules = change(rules)
                f.seek(0)
                f.truncate()
                f.write("".join(rule.line() for rule in rules))
                f.flush()
            return rules


def _parse(line: str) -> Rule:
    op, pattern, *numbers = line.split()
    return Rule(op, pattern, *(int(n) for n in numbers))


@pytest.fixture(scope="session")
def faultfs_library(tmp_path_factory) -> Path:
    """faultfs.so, built once per session; skips the test when there is no C compiler."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc or gcc) to build the fault-injection shim")
    out = tmp_path_factory.mktemp("faultfs") / "faultfs.so"
    cmd = [cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out),
           str(SOURCE), "-ldl"]
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if built.returncode != 0:  # the compiler is there: a failure is a bug in faultfs.c
        pytest.fail(f"building faultfs.so failed:\n{' '.join(cmd)}\n{built.stderr}")
    return out


@pytest.fixture
def faults(faultfs_library, tmp_path) -> Faults:
    """A fresh control file with no rule armed, next to the test's node directory."""
    return Faults(faultfs_library, tmp_path / "faultfs-control")
