"""Comments and docstrings give reasons, never history: no "issue 12" or "finding 9" in node/
or protocol/. A reader has no issue tracker open; the reason the issue gave belongs in the text.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HISTORY = re.compile(r'\b(issue (\d+|"\w+")|finding \d+)', re.IGNORECASE)

# TODO: files other branches are editing; their history comments go after those branches merge.
# Empty this list then (test_known_files_still_need_it fails once a listed file is clean).
KNOWN = {
    "node/supervisor.py",  # "Finding 8: ..." and "Finding 9: ..." in two docstrings
    "node/fronts/curve.py",  # "(issue 10)" in the module header
}


def _hits() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for folder in ("node", "protocol"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if HISTORY.search(line):
                    found.setdefault(str(path.relative_to(ROOT)), []).append(f"{number}: {line.strip()}")
    return found


def test_no_history_comments():
    bad = {path: lines for path, lines in _hits().items() if path not in KNOWN}
    assert not bad, f"comments that tell history instead of a reason: {bad}"


def test_known_files_still_need_it():
    hits = _hits()
    assert not [path for path in KNOWN if path not in hits], "clean now: take it off KNOWN"


def test_the_pattern():
    for text in ("(issue 12)", 'Design (issue "trust", finding 1)', "Finding 8: a log actor"):
        assert HISTORY.search(text), text
    for text in ("Redis issue #1019 saw 7-14 s stalls", "no issue here", "findings"):
        assert not HISTORY.search(text), text
