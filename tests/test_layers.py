"""The packages import one way: hw <- backends <- applications (pyproject.toml's contract)."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is in the dev extra")
def test_layers_contract_is_kept():
    proc = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=REPO, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_contract_catches_an_upward_import(tmp_path):
    """A bottom-layer module that imports a backend breaks the contract."""
    if not LINT_IMPORTS.exists():
        pytest.skip("import-linter is in the dev extra")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    # An empty package for every module the contract names, then one upward import.
    for layer in config["contracts"][0]["layers"]:
        for module in re.split(r"[|:]", layer):
            path = tmp_path.joinpath(*module.strip().split("."))
            for folder in [path, *path.relative_to(tmp_path).parents]:
                if folder != Path("."):
                    (tmp_path / folder).mkdir(parents=True, exist_ok=True)
                    (tmp_path / folder / "__init__.py").touch()
    (tmp_path / "hw" / "bad.py").write_text("import sim.rtl\n")
    config = (REPO / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(config[config.index("\n[tool.importlinter]\n"):
                                                    config.index("\n[tool.ruff]\n")])
    proc = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "hw.bad -> sim.rtl" in proc.stdout
