"""docs/design.md names every module under node/ (and names none that is gone)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_design_doc_matches_the_modules():
    doc = (ROOT / "docs" / "design.md").read_text()
    named = set(re.findall(r"`(node/[a-z_/]+\.py)`", doc))
    actual = {str(p.relative_to(ROOT)) for p in (ROOT / "node").rglob("*.py") if p.name != "__init__.py"}
    assert actual - named == set(), "modules missing from docs/design.md"
    assert named - actual == set(), "docs/design.md names modules that do not exist"
