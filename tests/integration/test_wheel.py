"""The project as a package: a wheel built from it, installed into a fresh virtualenv, runs from any directory.

The topologies and the image recipes ship inside the package (``lab/topologies``,
``lab/recipes``), so nothing is looked up beside a source tree: the installed ``lab`` lists the
whole catalogue, resolves each experiment's topology, computes the same image hashes as the
source tree (the same recipes, the same build contexts), and runs an experiment end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.root]


def clean_env() -> dict[str, str]:
    """No PYTHONPATH, no virtualenv of the project's: only what the wheel installed."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check",
                    "-w", str(where / "dist"), str(PROJECT)], check=True, timeout=300, cwd=where)
    [wheel] = (where / "dist").glob("lab-*.whl")
    env = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=120)
    subprocess.run([str(env / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    "-c", str(PROJECT / "constraints.txt"), str(wheel)], check=True, timeout=600, env=clean_env())
    yield env


def installed_lab(venv: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "lab"), *argv], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env=clean_env())


def test_the_wheel_holds_the_topologies_and_the_recipes(venv: Path) -> None:
    found = subprocess.run([str(venv / "bin" / "python"), "-c", "import lab, pathlib; "
                            "print(pathlib.Path(lab.__file__).parent)"],
                           capture_output=True, text=True, check=True, cwd="/", env=clean_env()).stdout.strip()
    package = Path(found)
    assert not package.is_relative_to(PROJECT), package
    assert {p.name for p in (package / "topologies").glob("*.yaml")} == \
        {p.name for p in (PROJECT / "lab" / "topologies").glob("*.yaml")}
    assert {p.parent.name for p in (package / "recipes").glob("*/Dockerfile")} == \
        {p.parent.name for p in (PROJECT / "lab" / "recipes").glob("*/Dockerfile")}


def test_the_installed_lab_lists_the_catalogue_from_any_directory(venv: Path, tmp_path: Path) -> None:
    listed = installed_lab(venv, "experiments", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    here = subprocess.run([sys.executable, "-m", "lab", "experiments", "--json"], capture_output=True,
                          text=True, check=True, cwd=PROJECT).stdout
    assert [e["id"] for e in json.loads(listed.stdout)] == [e["id"] for e in json.loads(here)]


def test_the_installed_lab_computes_the_source_trees_image_hashes(venv: Path, tmp_path: Path) -> None:
    installed = installed_lab(venv, "images", "ls", "--json", cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    here = subprocess.run([sys.executable, "-m", "lab", "images", "ls", "--json"], capture_output=True,
                          text=True, check=True, cwd=PROJECT).stdout
    assert json.loads(installed.stdout) == json.loads(here)


def test_the_installed_lab_runs_experiments_from_any_directory(venv: Path, tmp_path: Path) -> None:
    """One on namespace hosts (the programs run by the machine's python3 from site-packages), one on
    container nodes (images whose tags the installed lab computed from its packaged recipes)."""
    run = installed_lab(venv, "run", "arp-request-reply", "dns-a-cname", "--out", str(tmp_path / "runs"),
                        cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(list((tmp_path / "runs").glob("*/result.json"))) == 2


def test_a_packaged_topology_is_found_by_name(venv: Path, tmp_path: Path) -> None:
    shown = installed_lab(venv, "graph", "book-web", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "kongming20" in shown.stdout
