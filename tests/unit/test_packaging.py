"""What `pip install .` puts into site-packages: one `aofnode` package, no generic top-level names."""
from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STUDIES = "aofnode.bench.studies"  # one-off measurements: in the checkout, not installed


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_folders() -> set[str]:
    names = set()
    for name, folder in _setuptools()["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            names.add(".".join([name, *rel.parts]))
    return names


def test_the_package_list_names_every_package_folder_but_the_studies():
    listed = set(_setuptools()["packages"])
    assert listed == _package_folders() - {STUDIES}


def test_a_wheel_holds_only_the_aofnode_namespace(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    [wheel] = tmp_path.glob("aofnode-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"aofnode"}
    names = zipfile.ZipFile(wheel).namelist()
    assert "aofnode/protocol/server.py" in names and "aofnode/bench/cli.py" in names
    assert not any(n.startswith("aofnode/bench/studies/") for n in names)
