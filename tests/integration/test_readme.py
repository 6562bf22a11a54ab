"""The README against the tools it describes: the usage block lists every option that
``serve --help`` and ``cli --help`` print, and the walkthroughs leave nothing in the checkout that
git would pick up (secret keys included)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.nodeproc import AOFNODE

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _usage_block() -> str:
    section = README.split("## Using it", 1)[1]
    return section.split("```", 2)[1]


def _help_options(command: str) -> set[str]:
    out = subprocess.run([AOFNODE, command, "--help"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])\b", out)) - {"--help", "-h"}


@pytest.mark.parametrize("command", ["serve", "cli"])
def test_every_option_of_help_is_in_the_usage_block(command):
    lines = [ln for ln in _usage_block().splitlines()]
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"aofnode {command} "))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("aofnode")), len(lines))
    usage = "\n".join(lines[start:end])
    missing = {o for o in _help_options(command) if not re.search(re.escape(o) + r"(?![\w-])", usage)}
    assert missing == set(), f"README usage of `aofnode {command}` lacks {sorted(missing)}"


def _walkthrough_paths() -> set[str]:
    """Relative paths the README's shell examples create or write (--dir, keys, allow lists)."""
    paths = set()
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0]
            for option in ("--dir", "--curve-allow", "--curve-secret-key", "--curve-server-key",
                           "--curve-key", "-o"):
                paths |= set(re.findall(re.escape(option) + r"\s+(\S+)", line))
            m = re.match(r"\s*mkdir -p (.+)$", line.split("&&")[0])
            if m:
                paths |= set(m.group(1).split())
            paths |= set(re.findall(r"\bcp \S+ (\S+)", line))
    return {p.rstrip("/") for p in paths if not p.startswith(("/", "~", "$"))}


def test_the_walkthroughs_leave_nothing_git_would_track():
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT, capture_output=True,
                            text=True, timeout=10, check=False) if shutil.which("git") else None
    if inside is None or inside.stdout.strip() != "true":
        pytest.skip("not a git checkout (or no git): nothing to keep clean")
    paths = _walkthrough_paths()
    assert {"keys", "allow", "n1", "n2", "n3"} <= paths  # the parser still sees the examples
    tracked = [p for p in sorted(paths)
               if subprocess.run(["git", "check-ignore", "-q", "--no-index", f"{p}/file"],
                                 cwd=ROOT, timeout=10).returncode != 0]
    assert tracked == [], f"add to .gitignore, or use a path outside the checkout: {tracked}"
