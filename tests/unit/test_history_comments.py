"""Comments and docstrings give reasons, never history: no "issue 12" or "finding 9" in node/
or protocol/. A reader has no issue tracker open; the reason the issue gave belongs in the text.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HISTORY = re.compile(r'\b(issue (\d+|"\w+")|finding \d+)', re.IGNORECASE)



def _hits() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for folder in ("node", "protocol"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if HISTORY.search(line):
                    found.setdefault(str(path.relative_to(ROOT)), []).append(f"{number}: {line.strip()}")
    return found


def test_no_history_comments():
    bad = _hits()
    assert not bad, f"comments that tell history instead of a reason: {bad}"


def test_the_pattern():
    for text in ("(issue 12)", 'Design (issue "trust", finding 1)', "Finding 8: a log actor"):
        assert HISTORY.search(text), text
    for text in ("Redis issue #1019 saw 7-14 s stalls", "no issue here", "findings"):
        assert not HISTORY.search(text), text
